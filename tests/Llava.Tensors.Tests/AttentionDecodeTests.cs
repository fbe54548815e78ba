// Contract: the single-query (decode) attention path matches ReferenceKernels.Attention: GQA and MHA, causal offsets (incl. past the cache and before it), long caches, odd head dims, every width / thread count.
using Llava.Tensors;

namespace Llava.Tensors.Tests;

public class AttentionDecodeTests
{
    static void Check(int kvLen, int heads, int kvHeads, int headDim, bool causal, int offset, int seed)
    {
        var rng = new Random(seed);
        float[] q = TestUtil.Rand(rng, heads * headDim, 2f), k = TestUtil.Rand(rng, kvLen * kvHeads * headDim, 2f), v = TestUtil.Rand(rng, kvLen * kvHeads * headDim);
        float scale = 1f / MathF.Sqrt(Math.Max(1, headDim));
        var expected = new float[q.Length];
        ReferenceKernels.Attention(expected, q, k, v, 1, kvLen, heads, kvHeads, headDim, scale, causal, offset);
        var actual = new float[q.Length];
        actual.AsSpan().Fill(12345f);
        Attention.Forward(actual, q, k, v, 1, kvLen, heads, kvHeads, headDim, scale, causal, offset);
        // As AttentionTests: score error ≲ headDim·u·scale·Σ|q·k| perturbs a convex combination of v rows (|v| ≤ 1).
        double bound = 1e-5 * (1 + scale * headDim * 2 * 2);
        TestUtil.Close(expected, actual, _ => bound, $"decode kv={kvLen} h={heads}/{kvHeads} d={headDim} causal={causal} off={offset}");
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void MatchesReference(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            int seed = 100;
            foreach (int headDim in new[] { 1, 7, 8, 16, 33, 64, 128 })
                foreach (int kvLen in new[] { 1, 2, 3, 4, 5, 9, 31, 130 })
                {
                    Check(kvLen, 8, 2, headDim, causal: true, offset: kvLen - 1, seed++);   // GQA, sees the whole cache
                    Check(kvLen, 4, 4, headDim, causal: true, offset: kvLen / 2, seed++);   // MHA, sees a prefix
                    Check(kvLen, 6, 1, headDim, causal: false, offset: 0, seed++);          // MQA (per-head items when threads > 1)
                }
            Check(17, 4, 2, 16, causal: true, offset: 40, seed++);   // offset past the cache: clamped to kvLen
        });
    }

    [Theory]
    [InlineData(1)] [InlineData(2)] [InlineData(3)]
    public void LongCaches(int threads)
    {
        TestUtil.With(Simd.Native, threads, () =>
        {
            var rng = new Random(threads);
            foreach (int kvLen in new[] { 511, 1024, 2049, 3000 })
            {
                Check(kvLen, 8, 2, 128, causal: true, offset: kvLen - 1, seed: kvLen);
                Check(kvLen, 4, 4, 80, causal: true, offset: rng.Next(kvLen), seed: kvLen + 1);
            }
            Check(3000, 32, 32, 128, causal: true, offset: 2999, seed: 7);
        });
    }

    [Fact]
    public void NoVisibleKeyIsNaNAndNaNKeyPropagates()
    {
        var rng = new Random(3);
        int kv = 10, heads = 4, kvHeads = 2, d = 16;
        float[] q = TestUtil.Rand(rng, heads * d), k = TestUtil.Rand(rng, kv * kvHeads * d), v = TestUtil.Rand(rng, kv * kvHeads * d);
        var o = new float[heads * d];
        Attention.Forward(o, q, k, v, 1, kv, heads, kvHeads, d, 0.25f, causal: true, queryOffset: -1);   // sees nothing
        Assert.All(o, x => Assert.True(float.IsNaN(x)));
        k[(6 * kvHeads + 1) * d + 3] = float.NaN;   // key 6, kv head 1 → query heads 2 and 3
        Attention.Forward(o, q, k, v, 1, kv, heads, kvHeads, d, 0.25f, causal: true, queryOffset: 9);
        for (int h = 0; h < heads; h++) Assert.Equal(h >= 2, float.IsNaN(o[h * d]));
        Attention.Forward(o, q, k, v, 1, kv, heads, kvHeads, d, 0.25f, causal: true, queryOffset: 5);   // key 6 not visible
        Assert.All(o, x => Assert.True(float.IsFinite(x)));
    }

    [Fact]
    public void DecodeAllocatesNothing()
    {
        TestUtil.With(Simd.Native, 2, () =>
        {
            var rng = new Random(4);
            int kv = 700, heads = 8, kvHeads = 2, d = 64;
            float[] q = TestUtil.Rand(rng, heads * d), k = TestUtil.Rand(rng, kv * kvHeads * d), v = TestUtil.Rand(rng, kv * kvHeads * d);
            var o = new float[heads * d];
            Attention.Forward(o, q, k, v, 1, kv, heads, kvHeads, d, 0.125f, true, kv - 1);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 3; i++) Attention.Forward(o, q, k, v, 1, kv, heads, kvHeads, d, 0.125f, true, kv - 1);
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        });
    }
}
