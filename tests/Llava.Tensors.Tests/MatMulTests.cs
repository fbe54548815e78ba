// Contract: MatMul.Forward / ForwardNT match ReferenceKernels for all dtypes, odd shapes, tokens 1 and >1, every SIMD width and thread count.
using Llava.Tensors;

namespace Llava.Tensors.Tests;

public class MatMulTests
{
    // Tolerance rationale: an f32 FMA dot product of length k has rounding error ≤ ~k·u·Σ|x_i·w_i| in the worst case
    // and ~√k·u·Σ|x_i·w_i| typically (u = 2^-24 ≈ 6e-8); for k ≤ ~1000 the typical bound is < 2e-6·Σ|x·w|.
    // 1e-5·(Σ|x·w| + |b|) is therefore a real check (a wrong element or dropped term is off by ~1e-1·Σ|x·w|)
    // while allowing a summation order different from the (double-accumulating) reference.
    const double Rel = 1e-5;

    static void Check(int tokens, int rows, int cols, DType dtype, bool bias, int seed)
    {
        var rng = new Random(seed);
        float[] x = TestUtil.Rand(rng, tokens * cols), wv = TestUtil.Rand(rng, rows * cols), b = bias ? TestUtil.Rand(rng, rows) : [];
        var w = TestUtil.Weights(dtype, rows, cols, wv);
        var expected = new float[tokens * rows];
        ReferenceKernels.MatMul(expected, x, w, b, tokens);
        var actual = new float[tokens * rows];
        actual.AsSpan().Fill(float.NaN);   // every output must be written
        MatMul.Forward(actual, x, w, b, tokens);
        TestUtil.Close(expected, actual, i =>
        {
            int t = i / rows, o = i % rows;
            double s = bias ? Math.Abs(b[o]) : 0;
            for (int c = 0; c < cols; c++) s += Math.Abs(x[t * cols + c] * w[o, c]);
            return Rel * s + 1e-30;
        }, $"MatMul {dtype} t={tokens} {rows}x{cols}");
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void ForwardSmallShapes(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            var rng = new Random(1);
            foreach (var dtype in new[] { DType.F32, DType.F16, DType.BF16 })
                for (int cols = 0; cols <= 70; cols++)
                {
                    int rows = rng.Next(1, 40);
                    int tokens = (cols % 4) switch { 0 => 1, 1 => 2, 2 => 7, _ => 13 };
                    Check(tokens, rows, cols, dtype, bias: cols % 3 == 0, seed: cols * 7 + (int)dtype);
                }
        });
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void ForwardLargerShapes(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            foreach (var dtype in new[] { DType.F32, DType.F16, DType.BF16 })
            {
                Check(1, 1000, 257, dtype, bias: true, seed: 11);
                Check(1, 67, 1000, dtype, bias: false, seed: 12);
                Check(37, 100, 257, dtype, bias: true, seed: 13);
                Check(20, 257, 1000, dtype, bias: false, seed: 14);
                Check(577, 33, 64, dtype, bias: true, seed: 15);
            }
        });
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void ForwardNTMatchesReference(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            var rng = new Random(3);
            foreach (var (m, n, k) in new[] { (1, 1, 1), (1, 37, 70), (3, 5, 0), (5, 17, 33), (64, 65, 66), (257, 31, 129), (9, 300, 7) })
                foreach (bool acc in new[] { false, true })
                {
                    float[] a = TestUtil.Rand(rng, m * k), b = TestUtil.Rand(rng, n * k), c0 = TestUtil.Rand(rng, m * n);
                    var expected = (float[])c0.Clone();
                    ReferenceKernels.MatMulNT(expected, a, b, m, n, k, acc);
                    var actual = (float[])c0.Clone();
                    if (acc) MatMul.ForwardNT(actual, a, b, m, n, k, accumulate: true);
                    else MatMul.ForwardNT(actual, a, b, m, n, k);
                    TestUtil.Close(expected, actual, i =>
                    {
                        int r = i / n, j = i % n;
                        double s = acc ? Math.Abs(c0[i]) : 0;
                        for (int q = 0; q < k; q++) s += Math.Abs(a[r * k + q] * b[j * k + q]);
                        return Rel * s + 1e-30;
                    }, $"NT {m}x{n}x{k} acc={acc}");
                }
        });
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void NaNAndInfPropagate(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            foreach (var dtype in new[] { DType.F32, DType.F16, DType.BF16 })
                foreach (int tokens in new[] { 1, 9 })
                {
                    int rows = 45, cols = 83;
                    var rng = new Random(5);
                    float[] x = TestUtil.Rand(rng, tokens * cols), wv = TestUtil.Rand(rng, rows * cols);
                    x[3] = float.NaN;                        // token 0: every output NaN
                    wv[10 * cols + 80] = float.PositiveInfinity;   // row 10: ±inf (or NaN for token 0) for all tokens
                    var w = TestUtil.Weights(dtype, rows, cols, wv);
                    var y = new float[tokens * rows];
                    MatMul.Forward(y, x, w, [], tokens);
                    for (int o = 0; o < rows; o++) Assert.True(float.IsNaN(y[o]), $"token 0 row {o} should be NaN, got {y[o]}");
                    for (int t = 1; t < tokens; t++)
                        for (int o = 0; o < rows; o++)
                        {
                            float v = y[t * rows + o];
                            if (o == 10) Assert.True(float.IsInfinity(v) && Math.Sign(v) == Math.Sign(x[t * cols + 80]), $"t{t} row 10: {v}");
                            else Assert.True(float.IsFinite(v), $"t{t} row {o}: {v}");
                        }
                }
        });
    }

    [Fact]
    public void F16BitPatternsWidenExactly()
    {
        // Every f16 bit pattern (subnormals, ±0, ±inf, NaN) through the in-register conversion used by the F16 decode path.
        for (int i = 0; i < 65536; i += 16)
        {
            var lanes = new uint[16];
            for (int j = 0; j < 16; j++) lanes[j] = (uint)(i + j);
            var v512 = MatMul.HalfToSingle(System.Runtime.Intrinsics.Vector512.Create(lanes));
            var v256 = MatMul.HalfToSingle(System.Runtime.Intrinsics.Vector256.Create(lanes.AsSpan(8)));
            for (int j = 0; j < 16; j++)
            {
                float e = (float)BitConverter.UInt16BitsToHalf((ushort)(i + j));
                float a = v512[j];
                Assert.True(BitConverter.SingleToInt32Bits(e) == BitConverter.SingleToInt32Bits(a) || (float.IsNaN(e) && float.IsNaN(a)), $"512 bits {i + j:X4}: {e} vs {a}");
                if (j >= 8)
                {
                    a = v256[j - 8];
                    Assert.True(BitConverter.SingleToInt32Bits(e) == BitConverter.SingleToInt32Bits(a) || (float.IsNaN(e) && float.IsNaN(a)), $"256 bits {i + j:X4}: {e} vs {a}");
                }
            }
        }
    }
}
