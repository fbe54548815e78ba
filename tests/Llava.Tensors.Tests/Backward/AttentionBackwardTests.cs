// Contract: Attention.Backward matches f64 finite differences of the attention forward and the scalar reference for MHA and GQA
// (4/2, 8/1), causal with queryOffset 0 and > 0, non-causal, odd head dims and key counts crossing the key blocks, every SIMD
// width and thread count; accumulates into dQ/dK/dV and is thread-count deterministic.
using Llava.Tensors;

namespace Llava.Tensors.Tests.Backward;

public class AttentionBackwardTests
{
    // Every gradient element is a sum over ≤ kvLen (dQ) or tokens·group (dK, dV) terms P·(…) whose factors are
    // themselves f32 dots of length headDim (relative error ≲ headDim·u) and f32 exps (≤ 2 ulp), with the softmax
    // re-formed from an f32 log-sum-exp (error ≲ u·|L| relative in every P). For O(1) inputs and these sizes that is
    // well under 1e-5 of the largest gradient; 3e-5 leaves margin, and a missed mask or wrong group is O(max|g|).
    const double Rel = 3e-5;

    static double Loss(double[] q, double[] k, double[] v, double[] dO, int tokens, int kvLen, int heads, int kvHeads, int d, double scale, bool causal, int off)
    {
        int group = heads / kvHeads;
        double l = 0;
        var s = new double[kvLen];
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                int g = h / group, vis = causal ? Math.Clamp(off + t + 1, 0, kvLen) : kvLen;
                double m = double.NegativeInfinity, sum = 0;
                for (int j = 0; j < vis; j++)
                {
                    double a = 0;
                    for (int c = 0; c < d; c++) a += q[(t * heads + h) * d + c] * k[(j * kvHeads + g) * d + c];
                    s[j] = a * scale; m = Math.Max(m, s[j]);
                }
                for (int j = 0; j < vis; j++) { s[j] = Math.Exp(s[j] - m); sum += s[j]; }
                for (int j = 0; j < vis; j++)
                    for (int c = 0; c < d; c++) l += dO[(t * heads + h) * d + c] * s[j] / sum * v[(j * kvHeads + g) * d + c];
            }
        return l;
    }

    record Case(int Tokens, int KvLen, int Heads, int KvHeads, int HeadDim, bool Causal, int Offset);

    static float[][] Run(Case c, float[] q, float[] k, float[] v, float[] dO, float[] dq0, float[] dk0, float[] dv0, bool reference)
    {
        float scale = 1f / MathF.Sqrt(c.HeadDim);
        float[] dq = GradCheck.Clone(dq0), dk = GradCheck.Clone(dk0), dv = GradCheck.Clone(dv0);
        if (reference)
            BackwardReference.Attention(dq, dk, dv, dO, q, k, v, c.Tokens, c.KvLen, c.Heads, c.KvHeads, c.HeadDim, scale, c.Causal, c.Offset);
        else
        {
            var o = new float[q.Length];
            Attention.Forward(o, q, k, v, c.Tokens, c.KvLen, c.Heads, c.KvHeads, c.HeadDim, scale, c.Causal, c.Offset);
            Attention.Backward(dq, dk, dv, dO, o, q, k, v, c.Tokens, c.KvLen, c.Heads, c.KvHeads, c.HeadDim, scale, c.Causal, c.Offset);
        }
        return [dq, dk, dv];
    }

    static (float[] q, float[] k, float[] v, float[] dO, float[] dq0, float[] dk0, float[] dv0) Data(Case c, int seed)
    {
        var rng = new Random(seed);
        int qn = c.Tokens * c.Heads * c.HeadDim, kn = c.KvLen * c.KvHeads * c.HeadDim;
        return (TestUtil.Rand(rng, qn, 2f), TestUtil.Rand(rng, kn, 2f), TestUtil.Rand(rng, kn), TestUtil.Rand(rng, qn),
                TestUtil.Rand(rng, qn), TestUtil.Rand(rng, kn), TestUtil.Rand(rng, kn));
    }

    static readonly Case[] Small =
    [
        new(5, 5, 4, 2, 6, true, 0),      // GQA causal prefill
        new(3, 7, 4, 2, 5, true, 4),      // GQA causal with 4 cached tokens (odd head dim)
        new(4, 6, 2, 2, 8, false, 0),     // MHA full (vision tower)
        new(1, 9, 4, 1, 3, true, 8),      // decode-like: one query, GQA 4/1
        new(3, 4, 4, 2, 4, true, -1),     // query 0 sees nothing (its row contributes 0)
    ];

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void MatchesFiniteDifferences(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            int seed = 40;
            foreach (var c in Small)
            {
                var (q, k, v, dO, dq0, dk0, dv0) = Data(c, seed++);
                double[] qd = GradCheck.D(q), kd = GradCheck.D(k), vd = GradCheck.D(v), dOd = GradCheck.D(dO);
                double scale = 1f / MathF.Sqrt(c.HeadDim);
                Func<double> f = () => Loss(qd, kd, vd, dOd, c.Tokens, c.KvLen, c.Heads, c.KvHeads, c.HeadDim, scale, c.Causal, c.Offset);
                double[] gq = GradCheck.Fd(qd, f), gk = GradCheck.Fd(kd, f), gv = GradCheck.Fd(vd, f);
                var fast = Run(c, q, k, v, dO, dq0, dk0, dv0, reference: false);
                var reference = Run(c, q, k, v, dO, dq0, dk0, dv0, reference: true);
                GradCheck.Accumulated(dq0, fast[0], gq, Rel, $"dQ {c}");
                GradCheck.Accumulated(dk0, fast[1], gk, Rel, $"dK {c}");
                GradCheck.Accumulated(dv0, fast[2], gv, Rel, $"dV {c}");
                GradCheck.Accumulated(dq0, reference[0], gq, 1e-6, $"ref dQ {c}");
                GradCheck.Accumulated(dk0, reference[1], gk, 1e-6, $"ref dK {c}");
                GradCheck.Accumulated(dv0, reference[2], gv, 1e-6, $"ref dV {c}");
            }
        });
    }

    // Larger shapes: > KeyBlock (128) keys per query (several online-softmax blocks), > KvKeyBlock (64) keys per dK/dV item,
    // enough items to split across threads.
    static readonly Case[] Large =
    [
        new(40, 170, 4, 2, 16, true, 130),
        new(70, 70, 4, 2, 33, true, 0),
        new(37, 200, 8, 1, 7, false, 0),
        new(30, 30, 3, 3, 64, false, 0),
    ];

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void MatchesReferenceOnLargerShapes(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            int seed = 50;
            foreach (var c in Large)
            {
                var (q, k, v, dO, dq0, dk0, dv0) = Data(c, seed++);
                var fast = Run(c, q, k, v, dO, dq0, dk0, dv0, reference: false);
                var reference = Run(c, q, k, v, dO, dq0, dk0, dv0, reference: true);
                GradCheck.Accumulated(dq0, fast[0], GradCheck.Added(dq0, reference[0]), Rel, $"dQ {c}");
                GradCheck.Accumulated(dk0, fast[1], GradCheck.Added(dk0, reference[1]), Rel, $"dK {c}");
                GradCheck.Accumulated(dv0, fast[2], GradCheck.Added(dv0, reference[2]), Rel, $"dV {c}");
            }
        });
    }

    [Fact]
    public void DeterministicAndSkipsEmptyGradients()
    {
        var c = new Case(45, 150, 4, 2, 24, true, 105);
        var (q, k, v, dO, dq0, dk0, dv0) = Data(c, 60);
        foreach (int width in new[] { 512, 256, 0 })
            GradCheck.Deterministic(width, () => Run(c, q, k, v, dO, dq0, dk0, dv0, reference: false), $"attention backward width={width}");
        var all = Run(c, q, k, v, dO, dq0, dk0, dv0, reference: false);
        float scale = 1f / MathF.Sqrt(c.HeadDim);
        var o = new float[q.Length];
        Attention.Forward(o, q, k, v, c.Tokens, c.KvLen, c.Heads, c.KvHeads, c.HeadDim, scale, c.Causal, c.Offset);
        float[] onlyQ = GradCheck.Clone(dq0), onlyV = GradCheck.Clone(dv0);
        Attention.Backward(onlyQ, [], [], dO, o, q, k, v, c.Tokens, c.KvLen, c.Heads, c.KvHeads, c.HeadDim, scale, c.Causal, c.Offset);
        Attention.Backward([], [], onlyV, dO, o, q, k, v, c.Tokens, c.KvLen, c.Heads, c.KvHeads, c.HeadDim, scale, c.Causal, c.Offset);
        Assert.Equal(all[0], onlyQ);
        Assert.Equal(all[2], onlyV);
    }
}
