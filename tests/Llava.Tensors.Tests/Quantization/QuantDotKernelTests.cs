// Contract: every decode kernel family this machine supports (AVX2, AVX-VNNI) matches the scalar twins on every block type,
// odd row counts (the 4-row passes' tails) and odd block counts; a row's result does not depend on the rows around it.
using Llava.Tensors;
using Llava.Tensors.Quantization;

namespace Llava.Tensors.Tests.Quantization;

public unsafe class QuantDotKernelTests(ITestOutputHelper output)
{
    static readonly GgmlType[] Types = GgmlQuant.Types.Where(QuantDot.HasIntegerKernel).ToArray();

    static float[] Run(QuantDot.Kernel k, WeightMatrix w, float[] x)
    {
        var y = new float[w.Rows];
        var old = QuantDot.Force;
        QuantDot.Force = k;
        try { TestUtil.With(k == QuantDot.Kernel.Scalar ? 0 : 256, 1, () => MatMul.Forward(y, x, w, [], 1)); }
        finally { QuantDot.Force = old; }
        return y;
    }

    public static IEnumerable<object[]> SimdKernels() => [["Avx2"], ["Vnni"]];

    [Theory]
    [MemberData(nameof(SimdKernels))]
    public void KernelMatchesScalarTwin(string name)
    {
        var k = Enum.Parse<QuantDot.Kernel>(name);
        if (!QuantDot.Supported(k)) { output.WriteLine($"{k} not supported here: skipped"); return; }
        var rng = new Random(11 + (int)k);
        foreach (var t in Types)
        {
            int bs = GgmlTypeInfo.Layout(t)!.Value.BlockSize;
            foreach (var (rows, blocks) in new[] { (1, 1), (3, 2), (5, 3), (9, 1), (13, 5), (37, 41), (8, 4), (4, 7) })
            {
                int cols = blocks * bs;
                float[] x = TestUtil.Rand(rng, cols, 3f), wv = TestUtil.Rand(rng, rows * cols);
                var w = QuantMatMulTests.Quantized(t, rows, cols, wv, out var wd);
                var yk = Run(k, w, x);
                var ys = Run(QuantDot.Kernel.Scalar, w, x);
                TestUtil.Close(ys, yk, o =>
                {
                    double s = 0;
                    for (int i = 0; i < cols; i++) s += Math.Abs(x[i] * wd[o * cols + i]);
                    return 1e-5 * s;
                }, $"{t} {k} {rows}x{blocks} blocks vs scalar");
            }
        }
    }

    [Theory]
    [MemberData(nameof(SimdKernels))]
    public void RowResultIndependentOfNeighbours(string name)
    {
        var k = Enum.Parse<QuantDot.Kernel>(name);
        // Multi-row passes must give each row exactly what it gets alone (rows split differently between threads agree).
        if (!QuantDot.Supported(k)) { output.WriteLine($"{k} not supported here: skipped"); return; }
        var rng = new Random(5);
        foreach (var t in Types)
        {
            int bs = GgmlTypeInfo.Layout(t)!.Value.BlockSize, rows = 11, cols = 3 * bs;
            float[] x = TestUtil.Rand(rng, cols), wv = TestUtil.Rand(rng, rows * cols);
            var w = QuantMatMulTests.Quantized(t, rows, cols, wv, out _);
            var all = Run(k, w, x);
            for (int r = 0; r < rows; r++)
            {
                var one = new WeightMatrix(t, 1, cols, (byte*)w.Data + r * w.RowBytes);
                Assert.Equal(all[r], Run(k, one, x)[0]);
            }
        }
    }

    [Fact]
    public void DefaultPicksBestSupported()
    {
        Assert.Null(QuantDot.Force);
        var expect = QuantDot.VnniUsable ? QuantDot.Kernel.Vnni : QuantDot.Avx2Usable ? QuantDot.Kernel.Avx2 : QuantDot.Kernel.Scalar;
        Assert.Equal(expect, QuantDot.Current);
        output.WriteLine($"decode kernel here: {QuantDot.Current} (width {Simd.Width})");
    }
}
