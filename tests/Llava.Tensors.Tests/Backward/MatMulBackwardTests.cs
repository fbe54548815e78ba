// Contract: MatMul backward (dX, dW, dB; frozen F16/BF16 dX) matches f64 finite differences and the scalar reference over odd,
// multi-block shapes, every SIMD width and thread count, accumulates into its buffers, and is thread-count deterministic.
using Llava.Tensors;

namespace Llava.Tensors.Tests.Backward;

public class MatMulBackwardTests
{
    // Each gradient element is an f32 FMA sum of k products (k = out for dX, tokens for dW); its rounding error is
    // ≤ ~k·u·Σ|terms| worst case, ~√k·u·Σ|terms| typically (< 2e-6·Σ|terms| for k ≤ 300). Against the f64 reference we
    // bound it by 1e-5·Σ|terms| (Σ|terms| computed exactly as the reference applied to |dY|, |W|, |x|), as MatMulTests do.
    const double Rel = 1e-5;

    static double Loss(double[] x, double[] w, double[] b, double[] dy, int t, int o, int i)
    {
        double l = 0;
        for (int a = 0; a < t; a++)
            for (int r = 0; r < o; r++)
            {
                double y = b[r];
                for (int c = 0; c < i; c++) y += x[a * i + c] * w[r * i + c];
                l += dy[a * o + r] * y;
            }
        return l;
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void MatchesFiniteDifferences(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            var rng = new Random(11);
            foreach (var (t, o, i) in new[] { (1, 1, 1), (7, 11, 13), (3, 17, 5), (13, 9, 33) })
            {
                float[] x = TestUtil.Rand(rng, t * i), w = TestUtil.Rand(rng, o * i), b = TestUtil.Rand(rng, o), dy = TestUtil.Rand(rng, t * o);
                float[] dx0 = TestUtil.Rand(rng, t * i), dw0 = TestUtil.Rand(rng, o * i), db0 = TestUtil.Rand(rng, o);
                double[] xd = GradCheck.D(x), wd = GradCheck.D(w), bd = GradCheck.D(b), dyd = GradCheck.D(dy);
                Func<double> f = () => Loss(xd, wd, bd, dyd, t, o, i);
                double[] gx = GradCheck.Fd(xd, f), gw = GradCheck.Fd(wd, f), gb = GradCheck.Fd(bd, f);

                float[] dx = GradCheck.Clone(dx0), dw = GradCheck.Clone(dw0), db = GradCheck.Clone(db0);
                MatMul.Backward(dx, dw, db, dy, x, w, t, o, i);
                string what = $"t={t} out={o} in={i}";
                GradCheck.Accumulated(dx0, dx, gx, 2e-5, "dX " + what);
                GradCheck.Accumulated(dw0, dw, gw, 2e-5, "dW " + what);
                GradCheck.Accumulated(db0, db, gb, 2e-5, "dB " + what);

                float[] rx = GradCheck.Clone(dx0), rw = GradCheck.Clone(dw0), rb = GradCheck.Clone(db0);
                BackwardReference.MatMul(rx, rw, rb, dy, x, TestUtil.Weights(DType.F32, o, i, w), t);
                GradCheck.Accumulated(dx0, rx, gx, 1e-6, "ref dX " + what);
                GradCheck.Accumulated(dw0, rw, gw, 1e-6, "ref dW " + what);
                GradCheck.Accumulated(db0, rb, gb, 1e-6, "ref dB " + what);
            }
        });
    }

    // Shapes that cross every blocking boundary: > 192 output rows (two row blocks), > Nc columns (two column blocks and a
    // ragged last panel), > Kc = 256 inner length (two k slices), plus tails of the 6-row micro-kernel. The f64 reference
    // and the Σ|terms| bounds are computed once; every (width, threads) configuration is checked against them.
    [Fact]
    public void MatchesReferenceOnBlockedShapes()
    {
        var rng = new Random(12);
        foreach (var (t, o, i) in new[] { (197, 195, 131), (5, 300, 270), (300, 7, 45), (2, 1, 513) })
        {
            float[] x = TestUtil.Rand(rng, t * i), w = TestUtil.Rand(rng, o * i), dy = TestUtil.Rand(rng, t * o);
            float[] dx0 = TestUtil.Rand(rng, t * i), dw0 = TestUtil.Rand(rng, o * i), db0 = TestUtil.Rand(rng, o);
            var wm = TestUtil.Weights(DType.F32, o, i, w);
            float[] ex = GradCheck.Clone(dx0), ew = GradCheck.Clone(dw0), eb = GradCheck.Clone(db0);
            BackwardReference.MatMul(ex, ew, eb, dy, x, wm, t);
            // Σ|terms| per element: the reference on absolute values, from zero.
            float[] ax = new float[t * i], aw = new float[o * i], ab = new float[o];
            BackwardReference.MatMul(ax, aw, ab, Abs(dy), Abs(x), TestUtil.Weights(DType.F32, o, i, Abs(w)), t);
            foreach (var cfg in TestUtil.Configs())
                TestUtil.With((int)cfg[0], (int)cfg[1], () =>
                {
                    float[] dx = GradCheck.Clone(dx0), dw = GradCheck.Clone(dw0), db = GradCheck.Clone(db0);
                    MatMul.Backward(dx, dw, db, dy, x, w, t, o, i);
                    string what = $"t={t} out={o} in={i} width={cfg[0]} threads={cfg[1]}";
                    GradCheck.Close(ex, dx, j => Rel * ax[j] + 1.2e-7 * Math.Abs(ex[j]) + 1e-30, "dX " + what);
                    GradCheck.Close(ew, dw, j => Rel * aw[j] + 1.2e-7 * Math.Abs(ew[j]) + 1e-30, "dW " + what);
                    GradCheck.Close(eb, db, j => Rel * ab[j] + 1.2e-7 * Math.Abs(eb[j]) + 1e-30, "dB " + what);
                });
        }
    }

    [Fact]
    public void FrozenHalfWeightsInputGradient()
    {
        var rng = new Random(13);
        foreach (var dtype in new[] { DType.F32, DType.F16, DType.BF16 })
            foreach (var (t, o, i) in new[] { (1, 9, 17), (7, 33, 70), (195, 100, 131) })
            {
                float[] w = TestUtil.Rand(rng, o * i), dy = TestUtil.Rand(rng, t * o), dx0 = TestUtil.Rand(rng, t * i);
                var wm = TestUtil.Weights(dtype, o, i, w);
                float[] expected = GradCheck.Clone(dx0);
                BackwardReference.MatMul(expected, [], [], dy, [], wm, t);
                var absW = new float[o * i];
                for (int r = 0; r < o; r++) for (int c = 0; c < i; c++) absW[r * i + c] = Math.Abs(wm[r, c]);
                float[] bound = new float[t * i];
                BackwardReference.MatMul(bound, [], [], Abs(dy), [], TestUtil.Weights(DType.F32, o, i, absW), t);
                foreach (var cfg in TestUtil.Configs())
                    TestUtil.With((int)cfg[0], (int)cfg[1], () =>
                    {
                        float[] dx = GradCheck.Clone(dx0);
                        MatMul.BackwardInput(dx, dy, wm, t);
                        GradCheck.Close(expected, dx, j => Rel * bound[j] + 1.2e-7 * Math.Abs(expected[j]) + 1e-30, $"frozen {dtype} dX t={t} {o}x{i} width={cfg[0]} threads={cfg[1]}");
                    });
            }
    }

    [Fact]
    public void SkipsEmptyGradientsAndIsDeterministic()
    {
        var rng = new Random(14);
        int t = 197, o = 140, i = 270;
        float[] x = TestUtil.Rand(rng, t * i), w = TestUtil.Rand(rng, o * i), dy = TestUtil.Rand(rng, t * o);
        foreach (int width in new[] { 512, 256, 0 })
            GradCheck.Deterministic(width, () =>
            {
                float[] dx = new float[t * i], dw = new float[o * i], db = new float[o];
                MatMul.Backward(dx, dw, db, dy, x, w, t, o, i);
                float[] onlyW = new float[o * i];
                MatMul.Backward([], onlyW, [], dy, x, [], t, o, i);
                Assert.Equal(dw, onlyW);
                return [dx, dw, db];
            }, $"MatMul backward width={width}");
    }

    static float[] Abs(float[] a) => Array.ConvertAll(a, MathF.Abs);
}
