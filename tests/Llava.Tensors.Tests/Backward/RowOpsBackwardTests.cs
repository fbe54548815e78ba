// Contract: Softmax, RoPE, activation and embedding backward kernels match f64 finite differences and the scalar reference
// over odd lengths (SIMD tails), every SIMD width and thread count; embedding scatter-add handles repeated ids exactly.
using Llava.Tensors;

namespace Llava.Tensors.Tests.Backward;

public class RowOpsBackwardTests
{
    // Softmax: the gradient is y·(dY − ⟨y, dY⟩) with a ≤ 1000-term f32 dot (relative error ≲ √n·u) — 2e-5 of the largest
    // gradient bounds it. Activations: f32 erf/exp are ≤ ~2 ulp, the derivative formulas add a few roundings and the
    // x·φ(x) / z·s(1−s) terms are computed from the rounded inputs: a few 1e-7 relative, bounded by 2e-6·|dY|.
    const double Rel = 2e-5;

    static readonly int[] Lengths = [1, 7, 8, 15, 16, 17, 31, 33, 70, 257];

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void SoftmaxMatchesFiniteDifferencesAndReference(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            var rng = new Random(31);
            foreach (var (rows, cols) in new[] { (1, 1), (3, 7), (2, 16), (4, 17), (3, 33), (2, 70), (600, 41), (5, 1000) })
            {
                float[] x = TestUtil.Rand(rng, rows * cols, 3f), dy = TestUtil.Rand(rng, rows * cols), dx0 = TestUtil.Rand(rng, rows * cols);
                float[] y = GradCheck.Clone(x);
                Softmax.Forward(y, rows, cols);
                float[] dx = GradCheck.Clone(dx0);
                Softmax.Backward(dx, dy, y, rows, cols);
                float[] rx = GradCheck.Clone(dx0);
                BackwardReference.Softmax(rx, dy, y, rows, cols);
                string what = $"softmax {rows}x{cols}";
                GradCheck.Accumulated(dx0, dx, GradCheck.Added(dx0, rx), Rel, what);
                if (rows * cols > 300) continue;
                double[] xd = GradCheck.D(x), dyd = GradCheck.D(dy);
                double[] g = GradCheck.Fd(xd, () =>
                {
                    double l = 0;
                    for (int r = 0; r < rows; r++)
                    {
                        double m = double.NegativeInfinity, s = 0;
                        for (int i = 0; i < cols; i++) m = Math.Max(m, xd[r * cols + i]);
                        for (int i = 0; i < cols; i++) s += Math.Exp(xd[r * cols + i] - m);
                        for (int i = 0; i < cols; i++) l += dyd[r * cols + i] * Math.Exp(xd[r * cols + i] - m) / s;
                    }
                    return l;
                });
                // y itself is the f32 forward (≤ a few ulp), so both kernels see a slightly perturbed y: 1e-6 relative.
                GradCheck.Accumulated(dx0, dx, g, Rel, "fd " + what);
                GradCheck.Accumulated(dx0, rx, g, 2e-6, "fd ref " + what);
            }
        });
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void RopeBackwardIsTheTransposeRotation(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            var rng = new Random(32);
            foreach (var (tokens, heads, headDim) in new[] { (1, 1, 2), (3, 4, 6), (5, 2, 34), (7, 3, 64), (300, 4, 80) })
            {
                int half = headDim / 2;
                float[] cos = new float[tokens * half], sin = new float[tokens * half];
                for (int t = 0; t < tokens; t++)
                    for (int i = 0; i < half; i++)
                    {
                        double th = (t + 3) * Math.Pow(10000, -2.0 * i / headDim);
                        cos[t * half + i] = (float)Math.Cos(th); sin[t * half + i] = (float)Math.Sin(th);
                    }
                float[] g = TestUtil.Rand(rng, tokens * heads * headDim);
                float[] actual = GradCheck.Clone(g), expected = GradCheck.Clone(g);
                Rope.Backward(actual, cos, sin, tokens, heads, headDim);
                BackwardReference.Rope(expected, cos, sin, tokens, heads, headDim);
                string what = $"rope t={tokens} h={heads} d={headDim}";
                // two products and one add per element: ≤ 2 ulp of the operands (|g| ≤ 1)
                GradCheck.Close(expected, actual, _ => 3e-7, what);
                if (tokens > 10) continue;
                // Gradient of L = ⟨g, rope(x)⟩ wrt x, by finite differences of the f64 forward.
                double[] xd = GradCheck.D(TestUtil.Rand(rng, g.Length)), gd = GradCheck.D(g);
                double[] fd = GradCheck.Fd(xd, () =>
                {
                    double l = 0;
                    for (int t = 0; t < tokens; t++)
                        for (int h = 0; h < heads; h++)
                            for (int i = 0; i < half; i++)
                            {
                                int b = (t * heads + h) * headDim;
                                double c = cos[t * half + i], s = sin[t * half + i], x1 = xd[b + i], x2 = xd[b + i + half];
                                l += gd[b + i] * (x1 * c - x2 * s) + gd[b + i + half] * (x2 * c + x1 * s);
                            }
                    return l;
                });
                GradCheck.Accumulated([], actual, fd, 1e-6, "fd " + what);
                // Rotating back after the forward restores the input (orthogonality).
                float[] roundTrip = GradCheck.Clone(g);
                Rope.Apply(roundTrip, cos, sin, tokens, heads, headDim);
                Rope.Backward(roundTrip, cos, sin, tokens, heads, headDim);
                GradCheck.Close(g, roundTrip, _ => 5e-7, "round trip " + what);
            }
        });
    }

    delegate void Grad(Span<float> dX, ReadOnlySpan<float> dY, ReadOnlySpan<float> x);

    // 70000 elements = 5 blocks of 16384: enough for the elementwise job to split across threads.
    static readonly int[] ActivationLengths = [.. Lengths, 70000];

    static void CheckActivation(Grad fast, Grad reference, Func<double, double> f, string name, float range)
    {
        foreach (int n in ActivationLengths)
        {
            var rng = new Random(n);
            float[] x = TestUtil.Rand(rng, n, range), dy = TestUtil.Rand(rng, n), dx0 = TestUtil.Rand(rng, n);
            // FD of the f64 activation per element (an elementwise op: the Jacobian is diagonal); computed once per length.
            var e = new double[n];
            for (int i = 0; i < n; i++) e[i] = dx0[i] + dy[i] * (f(x[i] + 1e-5) - f(x[i] - 1e-5)) / 2e-5;
            float[] rx = GradCheck.Clone(dx0);
            reference(rx, dy, x);
            for (int i = 0; i < n; i++)
                if (!(Math.Abs(rx[i] - e[i]) <= 1e-8 + 1.2e-7 * Math.Abs(e[i]))) Assert.Fail($"ref {name} n={n}[{i}] x={x[i]}: {rx[i]:R} vs {e[i]:R}");
            foreach (var cfg in TestUtil.Configs())
                TestUtil.With((int)cfg[0], (int)cfg[1], () =>
                {
                    float[] dx = GradCheck.Clone(dx0);
                    fast(dx, dy, x);
                    for (int i = 0; i < n; i++)
                        if (!(Math.Abs(dx[i] - e[i]) <= 2e-6 * Math.Abs(dy[i]) + 1.2e-7 * Math.Abs(e[i]) + 1e-30))
                            Assert.Fail($"{name} n={n} width={cfg[0]} threads={cfg[1]} [{i}] x={x[i]}: {dx[i]:R} vs {e[i]:R}");
                });
        }
    }

    static double Sig(double z) => 1 / (1 + Math.Exp(-z));

    [Fact]
    public void Gelu() => CheckActivation(Activations.GeluBackward, BackwardReference.Gelu, x => 0.5 * x * (1 + ReferenceKernels.Erf(x / Math.Sqrt(2))), "gelu", 8f);

    [Fact]
    public void QuickGelu() => CheckActivation(Activations.QuickGeluBackward, BackwardReference.QuickGelu, x => x * Sig(1.702 * x), "quick_gelu", 12f);

    [Fact]
    public void Silu() => CheckActivation(Activations.SiluBackward, BackwardReference.Silu, x => x * Sig(x), "silu", 20f);

    [Fact]
    public void SiluMul()
    {
        foreach (int n in ActivationLengths)
        {
            var rng = new Random(n + 7);
            float[] gate = TestUtil.Rand(rng, n, 12f), up = TestUtil.Rand(rng, n, 2f), dy = TestUtil.Rand(rng, n);
            float[] dg0 = TestUtil.Rand(rng, n), du0 = TestUtil.Rand(rng, n);
            double[] eg = new double[n], eu = new double[n];
            for (int i = 0; i < n; i++)
            {
                double g = gate[i];
                eg[i] = dg0[i] + dy[i] * up[i] * ((g + 1e-5) * Sig(g + 1e-5) - (g - 1e-5) * Sig(g - 1e-5)) / 2e-5;
                eu[i] = du0[i] + dy[i] * g * Sig(g);
            }
            float[] rg = GradCheck.Clone(dg0), ru = GradCheck.Clone(du0);
            BackwardReference.SiluMul(rg, ru, dy, gate, up);
            for (int i = 0; i < n; i++)
            {
                if (!(Math.Abs(rg[i] - eg[i]) <= 2e-8 + 1.2e-7 * Math.Abs(eg[i]))) Assert.Fail($"ref dGate n={n}[{i}]: {rg[i]:R} vs {eg[i]:R}");
                if (!(Math.Abs(ru[i] - eu[i]) <= 1.2e-7 * Math.Abs(eu[i]) + 1e-30)) Assert.Fail($"ref dUp n={n}[{i}]: {ru[i]:R} vs {eu[i]:R}");
            }
            foreach (var cfg in TestUtil.Configs())
                TestUtil.With((int)cfg[0], (int)cfg[1], () =>
                {
                    float[] dg = GradCheck.Clone(dg0), du = GradCheck.Clone(du0);
                    Activations.SiluMulBackward(dg, du, dy, gate, up);
                    string what = $"silu_mul n={n} width={cfg[0]} threads={cfg[1]}";
                    for (int i = 0; i < n; i++)
                    {
                        if (!(Math.Abs(dg[i] - eg[i]) <= 2e-6 * Math.Abs(dy[i] * up[i]) + 1.2e-7 * Math.Abs(eg[i]) + 1e-30)) Assert.Fail($"dGate {what}[{i}]: {dg[i]:R} vs {eg[i]:R}");
                        if (!(Math.Abs(du[i] - eu[i]) <= 2e-6 * Math.Abs(dy[i] * gate[i]) + 1.2e-7 * Math.Abs(eu[i]) + 1e-30)) Assert.Fail($"dUp {what}[{i}]: {du[i]:R} vs {eu[i]:R}");
                    }
                    // one side only
                    float[] onlyUp = GradCheck.Clone(du0);
                    Activations.SiluMulBackward([], onlyUp, dy, gate, up);
                    Assert.Equal(du, onlyUp);
                });
        }
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void EmbeddingScatterAddsRepeatedIds(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            var rng = new Random(33);
            foreach (int cols in new[] { 1, 7, 33, 129, 300 })
            {
                int rows = 50;
                int[] ids = [3, 0, 49, 3, 17, 3, 0];
                foreach (int count in new[] { ids.Length, 300 })
                {
                    int[] tokenIds = count == ids.Length ? ids : Enumerable.Range(0, count).Select(_ => rng.Next(0, 6)).ToArray();
                    float[] dy = TestUtil.Rand(rng, tokenIds.Length * cols), t0 = TestUtil.Rand(rng, rows * cols);
                    float[] actual = GradCheck.Clone(t0), expected = GradCheck.Clone(t0);
                    Embedding.Backward(actual, dy, tokenIds, rows, cols);
                    BackwardReference.Embedding(expected, dy, tokenIds, rows, cols);
                    Assert.Equal(expected, actual);   // same f32 additions in the same (token) order
                    // untouched rows are untouched; row 3 got the sum of its tokens
                    for (int r = 0; r < rows; r++)
                        if (!tokenIds.Contains(r)) Assert.Equal(t0.AsSpan(r * cols, cols).ToArray(), actual.AsSpan(r * cols, cols).ToArray());
                }
            }
        });
    }

    [Fact]
    public void EmbeddingRejectsOutOfRangeIdsBeforeWriting()
    {
        var table = new float[10 * 4];
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Embedding.Backward(table, new float[8], [1, 10], 10, 4));
        Assert.Contains("10", e.Message);
        Assert.All(table, v => Assert.Equal(0f, v));
    }
}
