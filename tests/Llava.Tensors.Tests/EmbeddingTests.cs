// Contract: Embedding.Lookup copies/widens rows exactly for every dtype and rejects out-of-range ids by naming them.
using Llava.Tensors;

namespace Llava.Tensors.Tests;

public class EmbeddingTests
{
    [Theory]
    [InlineData(DType.F32)] [InlineData(DType.F16)] [InlineData(DType.BF16)]
    public void LookupMatchesReference(DType dtype)
    {
        foreach (int cols in new[] { 1, 7, 33, 70, 257 })
        {
            var table = TestUtil.Weights(dtype, 50, cols, TestUtil.Rand(new Random(cols), 50 * cols));
            int[] ids = [0, 49, 3, 3, 17];
            var expected = new float[ids.Length * cols];
            ReferenceKernels.Embedding(expected, table, ids);
            var actual = new float[ids.Length * cols];
            Embedding.Lookup(actual, table, ids);
            Assert.Equal(expected, actual);   // widening is exact
        }
    }

    [Fact]
    public void OutOfRangeIdThrowsNamingIt()
    {
        var table = TestUtil.Weights(DType.F32, 10, 4, new float[40]);
        var y = new float[8];
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Embedding.Lookup(y, table, [1, 10]));
        Assert.Contains("10", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Embedding.Lookup(y, table, [-1]));
    }
}
