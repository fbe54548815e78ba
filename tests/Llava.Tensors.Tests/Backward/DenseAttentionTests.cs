// Contract: DenseAttention (one head's scores materialized, all products as GEMMs) matches the f64 scalar references of
// the attention forward and backward for MHA and GQA, causal and full, odd head dims, one token and token counts that
// are not multiples of any tile; every SIMD width and thread count; accumulates into dQ/dK/dV.
using Llava.Tensors;

namespace Llava.Tensors.Tests.Backward;

public class DenseAttentionTests
{
    // Same error budget as AttentionBackwardTests: f32 dots of length headDim and tokens, f32 exps; a missed mask,
    // a wrong group or a lost accumulation is O(max|g|).
    const double Rel = 3e-5;

    record Case(int Tokens, int Heads, int KvHeads, int HeadDim, bool Causal = true);

    static readonly Case[] Cases =
    [
        new(1, 2, 2, 4),       // one token: P = [1]
        new(5, 4, 2, 6),       // GQA
        new(37, 4, 1, 7),      // GQA 4/1, odd head dim
        new(70, 3, 3, 33),     // MHA, tails everywhere
        new(129, 4, 2, 64),    // the micro LLaVA's head dim
        new(45, 4, 4, 16, Causal: false),   // full attention (CLIP tower)
        new(66, 6, 2, 7, Causal: false),
    ];

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void MatchesReferenceForwardAndBackward(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            int seed = 70;
            foreach (var c in Cases)
            {
                var rng = new Random(seed++);
                int qn = c.Tokens * c.Heads * c.HeadDim, kn = c.Tokens * c.KvHeads * c.HeadDim;
                float[] q = TestUtil.Rand(rng, qn, 2f), k = TestUtil.Rand(rng, kn, 2f), v = TestUtil.Rand(rng, kn), dO = TestUtil.Rand(rng, qn);
                float[] dq0 = TestUtil.Rand(rng, qn), dk0 = TestUtil.Rand(rng, kn), dv0 = TestUtil.Rand(rng, kn);
                float scale = 1f / MathF.Sqrt(c.HeadDim);

                var expected = new float[qn];
                ReferenceKernels.Attention(expected, q, k, v, c.Tokens, c.Tokens, c.Heads, c.KvHeads, c.HeadDim, scale, c.Causal, queryOffset: 0);
                var o = new float[qn];
                DenseAttention.Forward(o, q, k, v, c.Tokens, c.Heads, c.KvHeads, c.HeadDim, scale, c.Causal);
                GradCheck.Close(expected, o, i => 1e-5 * (1 + Math.Abs(expected[i])), $"forward {c}");

                float[] dq = GradCheck.Clone(dq0), dk = GradCheck.Clone(dk0), dv = GradCheck.Clone(dv0);
                float[] rq = GradCheck.Clone(dq0), rk = GradCheck.Clone(dk0), rv = GradCheck.Clone(dv0);
                DenseAttention.Backward(dq, dk, dv, dO, o, q, k, v, c.Tokens, c.Heads, c.KvHeads, c.HeadDim, scale, c.Causal);
                BackwardReference.Attention(rq, rk, rv, dO, q, k, v, c.Tokens, c.Tokens, c.Heads, c.KvHeads, c.HeadDim, scale, c.Causal, 0);
                GradCheck.Accumulated(dq0, dq, GradCheck.Added(dq0, rq), Rel, $"dQ {c}");
                GradCheck.Accumulated(dk0, dk, GradCheck.Added(dk0, rk), Rel, $"dK {c}");
                GradCheck.Accumulated(dv0, dv, GradCheck.Added(dv0, rv), Rel, $"dV {c}");
            }
        });
    }

    [Fact]
    public void RejectsSequencesLongerThanItsLimit()
    {
        int t = DenseAttention.MaxTokens + 1;
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            DenseAttention.Forward(new float[t * 4], new float[t * 4], new float[t * 4], new float[t * 4], t, 1, 1, 4, 0.5f));
    }
}
