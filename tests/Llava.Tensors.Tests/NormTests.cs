// Contract: RmsNorm and LayerNorm match ReferenceKernels over odd shapes, every SIMD width and thread count, and propagate NaN per row.
using Llava.Tensors;

namespace Llava.Tensors.Tests;

public class NormTests
{
    // f32 sum of squares / mean over ≤ 1000 terms has relative error ≲ √n·u ≈ 2e-6; the final scaling adds a few ulps.
    // 1e-5 relative to each output's magnitude bounds that with margin while still catching any wrong term.
    const double Rel = 1e-5;

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void RmsNormMatchesReference(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            var rng = new Random(2);
            foreach (var (rows, cols) in Shapes())
            {
                float[] x = TestUtil.Rand(rng, rows * cols, 3f), w = TestUtil.Rand(rng, cols);
                var expected = new float[rows * cols];
                ReferenceKernels.RmsNorm(expected, x, w, rows, cols, 1e-6f);
                var actual = new float[rows * cols];
                RmsNorm.Forward(actual, x, w, rows, cols, 1e-6f);
                TestUtil.Close(expected, actual, i => Rel * Math.Abs(expected[i]) + 1e-30, $"RmsNorm {rows}x{cols}");
                // in place (y aliases x)
                RmsNorm.Forward(x, x, w, rows, cols, 1e-6f);
                TestUtil.Close(expected, x, i => Rel * Math.Abs(expected[i]) + 1e-30, $"RmsNorm in place {rows}x{cols}");
            }
        });
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void LayerNormMatchesReference(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            var rng = new Random(3);
            foreach (var (rows, cols) in Shapes())
            {
                float[] x = TestUtil.Rand(rng, rows * cols, 3f), w = TestUtil.Rand(rng, cols), b = TestUtil.Rand(rng, cols);
                for (int i = 0; i < x.Length; i++) x[i] += 2f;   // nonzero mean exercises the centering
                var expected = new float[rows * cols];
                ReferenceKernels.LayerNorm(expected, x, w, b, rows, cols, 1e-5f);
                var actual = new float[rows * cols];
                LayerNorm.Forward(actual, x, w, b, rows, cols, 1e-5f);
                // Centering x - mean rounds at the scale of |x| + |mean|, then is multiplied by rstd·|w|; b adds its own ulp.
                TestUtil.Close(expected, actual, i =>
                {
                    int r = i / cols, c = i % cols;
                    double mean = 0, var = 0;
                    for (int j = 0; j < cols; j++) mean += x[r * cols + j];
                    mean /= cols;
                    for (int j = 0; j < cols; j++) var += (x[r * cols + j] - mean) * (x[r * cols + j] - mean);
                    double rstd = 1 / Math.Sqrt(var / cols + 1e-5);
                    return Rel * ((Math.Abs(x[i]) + Math.Abs(mean)) * rstd * Math.Abs(w[c]) + Math.Abs(b[c])) + 1e-30;
                }, $"LayerNorm {rows}x{cols}");
            }
        });
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void NaNPropagatesWithinRowOnly(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            int rows = 5, cols = 67;
            var rng = new Random(4);
            float[] x = TestUtil.Rand(rng, rows * cols), w = TestUtil.Rand(rng, cols), b = TestUtil.Rand(rng, cols);
            x[2 * cols + 66] = float.NaN;
            var y = new float[rows * cols];
            RmsNorm.Forward(y, x, w, rows, cols, 1e-6f);
            for (int i = 0; i < y.Length; i++) Assert.Equal(i / cols == 2, float.IsNaN(y[i]));
            LayerNorm.Forward(y, x, w, b, rows, cols, 1e-5f);
            for (int i = 0; i < y.Length; i++) Assert.Equal(i / cols == 2, float.IsNaN(y[i]));
        });
    }

    static IEnumerable<(int rows, int cols)> Shapes()
    {
        for (int cols = 1; cols <= 70; cols++) yield return (1 + cols % 5, cols);
        yield return (3, 257);
        yield return (7, 1000);
        yield return (600, 64);   // big enough to split across workers
        yield return (0, 10);
    }
}
