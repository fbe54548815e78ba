// Contract: Softmax matches ReferenceKernels, maps -inf to 0, an all -inf row to NaN and a NaN row to NaN, on every width/thread count.
using Llava.Tensors;

namespace Llava.Tensors.Tests;

public class SoftmaxTests
{
    // exp is ≤ ~2 ulp and the f32 sum of ≤ 1000 positive terms has relative error ≲ n·u ≈ 6e-5 worst, √n·u typical:
    // 1e-5 relative plus a 1e-9 absolute floor for underflowing entries.
    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void MatchesReference(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            var rng = new Random(6);
            var shapes = Enumerable.Range(0, 71).Select(c => (rows: 1 + c % 4, cols: c)).Concat([(3, 257), (5, 1000), (400, 100)]);
            foreach (var (rows, cols) in shapes)
            {
                float[] x = TestUtil.Rand(rng, rows * cols, 8f);
                for (int i = 0; i < x.Length; i += 5) x[i] = float.NegativeInfinity;   // masked entries
                var expected = (float[])x.Clone();
                ReferenceKernels.Softmax(expected, rows, cols);
                Softmax.Forward(x, rows, cols);
                TestUtil.Close(expected, x, i => 1e-5 * Math.Abs(expected[i]) + 1e-9, $"Softmax {rows}x{cols}");
            }
        });
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void SpecialRows(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            int cols = 37;
            var x = new float[3 * cols];
            var rng = new Random(7);
            for (int i = 0; i < cols; i++) { x[i] = float.NegativeInfinity; x[cols + i] = rng.NextSingle(); x[2 * cols + i] = rng.NextSingle(); }
            x[cols + 20] = float.NaN;
            x[2 * cols + 3] = float.NegativeInfinity;
            Softmax.Forward(x, 3, cols);
            for (int i = 0; i < 2 * cols; i++) Assert.True(float.IsNaN(x[i]), $"rows 0 (all -inf) and 1 (NaN) must be NaN at {i}");
            Assert.Equal(0f, x[2 * cols + 3]);
            Assert.Equal(1.0, x.AsSpan(2 * cols).ToArray().Sum(v => (double)v), 5);
        });
    }
}
