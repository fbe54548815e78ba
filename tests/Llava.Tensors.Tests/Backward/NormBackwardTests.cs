// Contract: RmsNorm/LayerNorm backward match f64 finite differences and the scalar reference over odd shapes, every SIMD width
// and thread count; the stats-writing forwards equal the plain forwards bit for bit; results are thread-count deterministic.
using Llava.Tensors;

namespace Llava.Tensors.Tests.Backward;

public class NormBackwardTests
{
    // Each dX element combines two f32 row reductions over cols ≤ 1000 terms (relative error ≲ √n·u ≈ 2e-6 typical)
    // scaled by rstd ~ 1; dW/dB sum over rows ≤ 600. 2e-5 of the tensor's largest gradient bounds these with margin,
    // while a missing term (e.g. dropping the mean(g·x̂) correction) moves elements by O(max|g|).
    const double Rel = 2e-5;

    static double RmsLoss(double[] x, double[] w, double[] dy, int rows, int cols, double eps)
    {
        double l = 0;
        for (int r = 0; r < rows; r++)
        {
            double ss = 0;
            for (int i = 0; i < cols; i++) ss += x[r * cols + i] * x[r * cols + i];
            double rs = 1 / Math.Sqrt(ss / cols + eps);
            for (int i = 0; i < cols; i++) l += dy[r * cols + i] * x[r * cols + i] * rs * w[i];
        }
        return l;
    }

    static double LnLoss(double[] x, double[] w, double[] b, double[] dy, int rows, int cols, double eps)
    {
        double l = 0;
        for (int r = 0; r < rows; r++)
        {
            double m = 0, v = 0;
            for (int i = 0; i < cols; i++) m += x[r * cols + i];
            m /= cols;
            for (int i = 0; i < cols; i++) v += (x[r * cols + i] - m) * (x[r * cols + i] - m);
            double rs = 1 / Math.Sqrt(v / cols + eps);
            for (int i = 0; i < cols; i++) l += dy[r * cols + i] * ((x[r * cols + i] - m) * rs * w[i] + b[i]);
        }
        return l;
    }

    static IEnumerable<(int rows, int cols)> SmallShapes() => [(1, 1), (3, 5), (2, 8), (5, 17), (4, 33), (3, 70)];
    static IEnumerable<(int rows, int cols)> BigShapes() => [(3, 257), (7, 1000), (600, 64), (37, 129)];

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void RmsNormMatchesFiniteDifferencesAndReference(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            var rng = new Random(21);
            const float eps = 1e-6f;
            foreach (var (rows, cols) in SmallShapes())
            {
                float[] x = TestUtil.Rand(rng, rows * cols, 2f), w = TestUtil.Rand(rng, cols), dy = TestUtil.Rand(rng, rows * cols);
                float[] dx0 = TestUtil.Rand(rng, rows * cols), dw0 = TestUtil.Rand(rng, cols);
                double[] xd = GradCheck.D(x), wd = GradCheck.D(w), dyd = GradCheck.D(dy);
                Func<double> f = () => RmsLoss(xd, wd, dyd, rows, cols, eps);
                double[] gx = GradCheck.Fd(xd, f), gw = GradCheck.Fd(wd, f);
                string what = $"{rows}x{cols}";

                // with the rstd saved by the stats forward
                var rstd = new float[rows];
                var y = new float[rows * cols];
                RmsNorm.Forward(y, rstd, x, w, rows, cols, eps);
                float[] dx = GradCheck.Clone(dx0), dw = GradCheck.Clone(dw0);
                RmsNorm.Backward(dx, dw, dy, x, w, rstd, rows, cols);
                GradCheck.Accumulated(dx0, dx, gx, Rel, "RMS dX " + what);
                GradCheck.Accumulated(dw0, dw, gw, Rel, "RMS dW " + what);
                // recomputing rstd gives the same bits
                float[] dx2 = GradCheck.Clone(dx0), dw2 = GradCheck.Clone(dw0);
                RmsNorm.Backward(dx2, dw2, dy, x, w, rows, cols, eps);
                Assert.Equal(dx, dx2); Assert.Equal(dw, dw2);

                float[] rx = GradCheck.Clone(dx0), rw = GradCheck.Clone(dw0);
                BackwardReference.RmsNorm(rx, rw, dy, x, w, rows, cols, eps);
                GradCheck.Accumulated(dx0, rx, gx, 1e-6, "ref RMS dX " + what);
                GradCheck.Accumulated(dw0, rw, gw, 1e-6, "ref RMS dW " + what);
            }
            foreach (var (rows, cols) in BigShapes())
            {
                float[] x = TestUtil.Rand(rng, rows * cols, 2f), w = TestUtil.Rand(rng, cols), dy = TestUtil.Rand(rng, rows * cols);
                float[] dx0 = TestUtil.Rand(rng, rows * cols), dw0 = TestUtil.Rand(rng, cols);
                float[] rx = GradCheck.Clone(dx0), rw = GradCheck.Clone(dw0);
                BackwardReference.RmsNorm(rx, rw, dy, x, w, rows, cols, eps);
                float[] dx = GradCheck.Clone(dx0), dw = GradCheck.Clone(dw0);
                RmsNorm.Backward(dx, dw, dy, x, w, rows, cols, eps);
                GradCheck.Accumulated(dx0, dx, GradCheck.Added(dx0, rx), Rel, $"RMS dX {rows}x{cols}");
                GradCheck.Accumulated(dw0, dw, GradCheck.Added(dw0, rw), Rel, $"RMS dW {rows}x{cols}");
            }
        });
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void LayerNormMatchesFiniteDifferencesAndReference(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            var rng = new Random(22);
            const float eps = 1e-5f;
            foreach (var (rows, cols) in SmallShapes().Where(s => s.cols > 1))   // cols 1: x̂ ≡ 0, gradient wrt x is 0 up to eps effects
            {
                float[] x = TestUtil.Rand(rng, rows * cols, 2f), w = TestUtil.Rand(rng, cols), b = TestUtil.Rand(rng, cols), dy = TestUtil.Rand(rng, rows * cols);
                for (int i = 0; i < x.Length; i++) x[i] += 1.5f;   // nonzero mean
                float[] dx0 = TestUtil.Rand(rng, rows * cols), dw0 = TestUtil.Rand(rng, cols), db0 = TestUtil.Rand(rng, cols);
                double[] xd = GradCheck.D(x), wd = GradCheck.D(w), bd = GradCheck.D(b), dyd = GradCheck.D(dy);
                Func<double> f = () => LnLoss(xd, wd, bd, dyd, rows, cols, eps);
                double[] gx = GradCheck.Fd(xd, f), gw = GradCheck.Fd(wd, f), gb = GradCheck.Fd(bd, f);
                string what = $"{rows}x{cols}";

                float[] mean = new float[rows], rstd = new float[rows], y = new float[rows * cols], yPlain = new float[rows * cols];
                LayerNorm.Forward(y, mean, rstd, x, w, b, rows, cols, eps);
                LayerNorm.Forward(yPlain, x, w, b, rows, cols, eps);
                Assert.Equal(yPlain, y);
                float[] dx = GradCheck.Clone(dx0), dw = GradCheck.Clone(dw0), db = GradCheck.Clone(db0);
                LayerNorm.Backward(dx, dw, db, dy, x, w, mean, rstd, rows, cols);
                GradCheck.Accumulated(dx0, dx, gx, Rel, "LN dX " + what);
                GradCheck.Accumulated(dw0, dw, gw, Rel, "LN dW " + what);
                GradCheck.Accumulated(db0, db, gb, Rel, "LN dB " + what);
                // dB alone (no dW) takes the column-sum path
                float[] dbOnly = GradCheck.Clone(db0);
                LayerNorm.Backward([], [], dbOnly, dy, x, w, mean, rstd, rows, cols);
                GradCheck.Accumulated(db0, dbOnly, gb, Rel, "LN dB only " + what);

                float[] rx = GradCheck.Clone(dx0), rw = GradCheck.Clone(dw0), rb = GradCheck.Clone(db0);
                BackwardReference.LayerNorm(rx, rw, rb, dy, x, w, rows, cols, eps);
                GradCheck.Accumulated(dx0, rx, gx, 1e-6, "ref LN dX " + what);
                GradCheck.Accumulated(dw0, rw, gw, 1e-6, "ref LN dW " + what);
                GradCheck.Accumulated(db0, rb, gb, 1e-6, "ref LN dB " + what);
            }
            foreach (var (rows, cols) in BigShapes())
            {
                float[] x = TestUtil.Rand(rng, rows * cols, 2f), w = TestUtil.Rand(rng, cols), b = TestUtil.Rand(rng, cols), dy = TestUtil.Rand(rng, rows * cols);
                float[] dx0 = TestUtil.Rand(rng, rows * cols), dw0 = TestUtil.Rand(rng, cols), db0 = TestUtil.Rand(rng, cols);
                float[] rx = GradCheck.Clone(dx0), rw = GradCheck.Clone(dw0), rb = GradCheck.Clone(db0);
                BackwardReference.LayerNorm(rx, rw, rb, dy, x, w, rows, cols, eps);
                float[] mean = new float[rows], rstd = new float[rows], y = new float[rows * cols];
                LayerNorm.Forward(y, mean, rstd, x, w, b, rows, cols, eps);
                float[] dx = GradCheck.Clone(dx0), dw = GradCheck.Clone(dw0), db = GradCheck.Clone(db0);
                LayerNorm.Backward(dx, dw, db, dy, x, w, mean, rstd, rows, cols);
                GradCheck.Accumulated(dx0, dx, GradCheck.Added(dx0, rx), Rel, $"LN dX {rows}x{cols}");
                GradCheck.Accumulated(dw0, dw, GradCheck.Added(dw0, rw), Rel, $"LN dW {rows}x{cols}");
                GradCheck.Accumulated(db0, db, GradCheck.Added(db0, rb), Rel, $"LN dB {rows}x{cols}");
            }
        });
    }

    [Fact]
    public void StatsForwardIsBitIdenticalInPlaceAndDeterministic()
    {
        var rng = new Random(23);
        int rows = 300, cols = 129;
        float[] x = TestUtil.Rand(rng, rows * cols, 3f), w = TestUtil.Rand(rng, cols), dy = TestUtil.Rand(rng, rows * cols);
        var plain = new float[rows * cols];
        RmsNorm.Forward(plain, x, w, rows, cols, 1e-6f);
        float[] inPlace = GradCheck.Clone(x), rstd = new float[rows];
        RmsNorm.Forward(inPlace, rstd, inPlace, w, rows, cols, 1e-6f);
        Assert.Equal(plain, inPlace);
        foreach (int width in new[] { 512, 256, 0 })
            GradCheck.Deterministic(width, () =>
            {
                float[] dx = new float[rows * cols], dw = new float[cols], db = new float[cols], mean = new float[rows], rs = new float[rows];
                RmsNorm.Backward(dx, dw, dy, x, w, rows, cols, 1e-6f);
                float[] lx = new float[rows * cols], lw = new float[cols], y = new float[rows * cols];
                LayerNorm.Forward(y, mean, rs, x, w, w, rows, cols, 1e-5f);
                LayerNorm.Backward(lx, lw, db, dy, x, w, mean, rs, rows, cols);
                return [dx, dw, lx, lw, db];
            }, $"norm backward width={width}");
    }
}
