// Contract: Elementwise helpers match scalar loops exactly for all lengths, widths and thread counts.
using Llava.Tensors;

namespace Llava.Tensors.Tests;

public class ElementwiseTests
{
    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void AddMultiplyScaleExact(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            foreach (int n in new[] { 0, 1, 7, 16, 17, 33, 70, 257, 1000, 100000 })
            {
                var rng = new Random(n);
                float[] y = TestUtil.Rand(rng, n), x = TestUtil.Rand(rng, n);
                var expected = (float[])y.Clone();
                ReferenceKernels.Add(expected, x);
                var actual = (float[])y.Clone();
                Elementwise.Add(actual, x);
                Assert.Equal(expected, actual);   // a single rounding per element: must be bit-exact
                actual = (float[])y.Clone();
                Elementwise.Multiply(actual, x);
                Assert.Equal(y.Zip(x, (a, b) => a * b).ToArray(), actual);
                actual = (float[])y.Clone();
                Elementwise.Scale(actual, 0.37f);
                Assert.Equal(y.Select(a => a * 0.37f).ToArray(), actual);
            }
        });
    }
}
