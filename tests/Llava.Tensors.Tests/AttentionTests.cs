// Contract: Attention.Forward matches ReferenceKernels for MHA and GQA, causal with offsets and non-causal, odd head dims, every width/thread count.
using Llava.Tensors;

namespace Llava.Tensors.Tests;

public class AttentionTests
{
    // Error sources: each score is an f32 dot of length headDim (abs error ≲ headDim·u·scale·Σ|q·k|, which is a relative
    // error of the same size in each probability), exp (~2 ulp), and f32 sums over ≤ kvLen terms of the online softmax.
    // All of these perturb a convex combination of v rows, so 1e-5·(1 + scale·Σ|q|·max|k|)·max|v| bounds the output error.
    static void Check(int tokens, int kvLen, int heads, int kvHeads, int headDim, bool causal, int offset, int seed)
    {
        var rng = new Random(seed);
        float[] q = TestUtil.Rand(rng, tokens * heads * headDim, 2f), k = TestUtil.Rand(rng, kvLen * kvHeads * headDim, 2f), v = TestUtil.Rand(rng, kvLen * kvHeads * headDim);
        float scale = 1f / MathF.Sqrt(Math.Max(1, headDim));
        var expected = new float[q.Length];
        ReferenceKernels.Attention(expected, q, k, v, tokens, kvLen, heads, kvHeads, headDim, scale, causal, offset);
        var actual = new float[q.Length];
        actual.AsSpan().Fill(12345f);
        Attention.Forward(actual, q, k, v, tokens, kvLen, heads, kvHeads, headDim, scale, causal, offset);
        double bound = 1e-5 * (1 + scale * headDim * 2 * 2) * 1.0;
        TestUtil.Close(expected, actual, _ => bound, $"Attention t={tokens} kv={kvLen} h={heads}/{kvHeads} d={headDim} causal={causal} off={offset}");
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void MatchesReference(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            int seed = 0;
            foreach (int headDim in new[] { 1, 7, 16, 33, 64, 80 })
            {
                // decode: one query over a growing cache, GQA 8/2 and MHA
                foreach (int kvLen in new[] { 1, 2, 17, 129, 300 })
                {
                    Check(1, kvLen, 8, 2, headDim, causal: true, offset: kvLen - 1, seed++);
                    Check(1, kvLen, 4, 4, headDim, causal: true, offset: kvLen - 1, seed++);
                }
                // prefill with a cache already holding `offset` tokens
                Check(5, 5, 8, 2, headDim, causal: true, offset: 0, seed++);
                Check(33, 40, 8, 2, headDim, causal: true, offset: 7, seed++);
                Check(20, 150, 6, 3, headDim, causal: true, offset: 130, seed++);
                // non-causal (CLIP vision tower)
                Check(37, 37, 4, 4, headDim, causal: false, offset: 0, seed++);
                Check(3, 200, 8, 2, headDim, causal: false, offset: 0, seed++);
            }
            Check(257, 257, 16, 16, 64, causal: false, offset: 0, seed++);
            Check(100, 300, 8, 1, 64, causal: true, offset: 200, seed++);
            // self-attention long enough for the dense (GEMM) path: a first prefill chunk, the CLIP tower
            Check(70, 70, 8, 2, 33, causal: true, offset: 0, seed++);
            Check(577, 577, 4, 4, 64, causal: false, offset: 0, seed++);
        });
    }

    [Fact]
    public void QueryWithoutVisibleKeysIsNaN()
    {
        // kvLen 0: nothing to attend to → 0/0 like torch's softmax over an all -inf row.
        var o = new float[2 * 8];
        Attention.Forward(o, new float[16], [], [], 1, 0, 2, 1, 8, 1f, causal: false, queryOffset: 0);
        Assert.All(o, x => Assert.True(float.IsNaN(x)));
    }

    [Fact]
    public void NaNInKeyPropagatesOnlyToQueriesThatSeeIt()
    {
        int tokens = 6, heads = 2, d = 8;
        var rng = new Random(1);
        float[] q = TestUtil.Rand(rng, tokens * heads * d), k = TestUtil.Rand(rng, tokens * heads * d), v = TestUtil.Rand(rng, tokens * heads * d);
        k[(3 * heads + 1) * d + 2] = float.NaN;   // key 3, head 1
        var o = new float[q.Length];
        Attention.Forward(o, q, k, v, tokens, tokens, heads, heads, d, 0.3f, causal: true, queryOffset: 0);
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
                Assert.Equal(h == 1 && t >= 3, float.IsNaN(o[(t * heads + h) * d]));
    }
}
