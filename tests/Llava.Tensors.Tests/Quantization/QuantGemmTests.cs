// Contract: the integer prefill GEMM (QuantGemm): AVX2, AVX-VNNI and AVX-512 kernels (each path the machine runs) bit-identical to their scalar twins (odd token / row counts, strip tails,
// K not a multiple of 256 or of the slice), agreement with the decode kernel run per token row, with the dequantized f32 product,
// NaN/Inf → NaN, activation rows identical to the decode quantizer's, routing by token count, thread-count independence, no allocation.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using Llava.Tensors;
using Llava.Tensors.Quantization;

namespace Llava.Tensors.Tests.Quantization;

public unsafe class QuantGemmTests(ITestOutputHelper output)
{
    static readonly GgmlType[] Types = [GgmlType.Q4_0, GgmlType.Q8_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K];
    // Tails of both tile heights (3 tokens AVX2, 6 VNNI).
    static readonly int[] TokenCounts = [1, 2, 3, 5, 6, 11, 17];
    static readonly int[] RowCounts = [1, 7, 16, 17, 33, 45];

    static bool K256(GgmlType t) => QuantDot.UsesK256(t);

    // K values: one block, odd block counts, ones not a multiple of 256 (32-element types), and ones spanning 2 and 3 slices of Kc.
    static int[] Ks(GgmlType t) => K256(t) ? [256, 768, QuantGemm.Kc + 256, 2 * QuantGemm.Kc + 512] : [32, 96, QuantGemm.Kc + 32, 2 * QuantGemm.Kc + 96];

    /// <summary>Every SIMD kernel path this machine can run (VNNI / AVX-512 only where supported).</summary>
    static QuantGemm.KernelPath[] SimdPaths =>
    [
        QuantGemm.KernelPath.Avx2,
        .. AvxVnni.IsSupported ? [QuantGemm.KernelPath.Vnni] : Array.Empty<QuantGemm.KernelPath>(),
        .. Avx512BW.IsSupported ? [QuantGemm.KernelPath.Avx512] : Array.Empty<QuantGemm.KernelPath>(),
    ];

    static float[] Run(WeightMatrix w, float[] x, float[] bias, int tokens, bool simd) => Run(w, x, bias, tokens, QuantGemm.BestPath(w.Format, simd));

    static float[] Run(WeightMatrix w, float[] x, float[] bias, int tokens, QuantGemm.KernelPath path)
    {
        var y = new float[tokens * w.Rows];
        y.AsSpan().Fill(float.NaN);
        fixed (float* py = y) fixed (float* px = x) fixed (float* pb = bias)
            QuantGemm.Forward(py, px, (byte*)w.Data, w.RowBytes, w.Format, w.Rows, w.Cols, bias.Length == 0 ? null : pb, tokens, path);
        return y;
    }

    static void AssertIdentical(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]) || (float.IsNaN(expected[i]) && float.IsNaN(actual[i])),
                $"{what}[{i}]: scalar {expected[i]:R}, simd {actual[i]:R}");
    }

    [Theory]
    [InlineData(1)] [InlineData(3)]
    public void SimdKernelsMatchScalarTwinsBitForBit(int threads)
    {
        if (!QuantDot.Avx2Usable) { output.WriteLine("no AVX2: only the scalar twin runs here"); return; }
        TestUtil.With(Simd.Native, threads, () =>
        {
            foreach (var t in Types)
                foreach (int k in Ks(t))
                {
                    var rng = new Random(k * 13 + (int)t);
                    foreach (int rows in RowCounts)
                    {
                        var w = QuantMatMulTests.Quantized(t, rows, k, TestUtil.Rand(rng, rows * k), out _);
                        foreach (int tokens in TokenCounts)
                        {
                            float[] x = TestUtil.Rand(rng, tokens * k, 2f), bias = rows % 2 == 1 ? TestUtil.Rand(rng, rows) : [];
                            var expected = Run(w, x, bias, tokens, QuantGemm.KernelPath.Scalar);
                            foreach (var path in SimdPaths)
                                AssertIdentical(expected, Run(w, x, bias, tokens, path), $"{path} {t} k={k} rows={rows} tokens={tokens}");
                        }
                    }
                }
        });
    }

    [Fact]
    public void ResultsDoNotDependOnThreadCount()
    {
        foreach (var t in Types)
        {
            var rng = new Random(11 + (int)t);
            int rows = 77, k = K256(t) ? QuantGemm.Kc + 256 : QuantGemm.Kc + 64, tokens = QuantGemm.TokenChunk + 44;   // two token chunks, two slices
            var w = QuantMatMulTests.Quantized(t, rows, k, TestUtil.Rand(rng, rows * k), out _);
            var x = TestUtil.Rand(rng, tokens * k);
            float[]? first = null;
            foreach (var path in QuantDot.Avx2Usable ? SimdPaths : [QuantGemm.KernelPath.Scalar])
                foreach (int threads in new[] { 1, 2, 3 })
                    TestUtil.With(Simd.Native, threads, () =>
                    {
                        // Every path gives the scalar twin's bits, so one reference serves them all.
                        var y = Run(w, x, [], tokens, path);
                        if (first == null) first = y; else AssertIdentical(first, y, $"{path} {t} threads={threads}");
                    });
        }
    }

    [Theory]
    [InlineData(256)] [InlineData(0)]
    public void AgreesWithDecodeKernelPerTokenRow(int width)
    {
        // Same activation quantization and the same integer block sums as the decode kernels: only the f32
        // accumulation order differs, so the difference is a few ulps of Σ|terms| (asserted: 1e-6 of it).
        TestUtil.With(width, 2, () =>
        {
            foreach (var t in Types)
                foreach (int k in Ks(t))
                {
                    var rng = new Random(k + 7 * (int)t);
                    int rows = 45, tokens = QuantGemm.MinTokens + 1;
                    var w = QuantMatMulTests.Quantized(t, rows, k, TestUtil.Rand(rng, rows * k), out var wd);
                    float[] x = TestUtil.Rand(rng, tokens * k, 3f), bias = TestUtil.Rand(rng, rows);
                    var y = new float[tokens * rows];
                    MatMul.Forward(y, x, w, bias, tokens);     // tokens ≥ MinTokens: the prefill GEMM
                    double num = 0, den = 0, worst = 0;
                    var yd = new float[rows];
                    for (int tk = 0; tk < tokens; tk++)
                    {
                        MatMul.Forward(yd, x.AsSpan(tk * k, k), w, bias, 1);   // the decode kernel
                        for (int o = 0; o < rows; o++)
                        {
                            double s = Math.Abs(bias[o]);
                            for (int i = 0; i < k; i++) s += Math.Abs(x[tk * k + i] * wd[o * k + i]);
                            double diff = Math.Abs(y[tk * rows + o] - yd[o]);
                            Assert.True(diff <= 1e-6 * s, $"{t} k={k} token {tk} row {o}: gemm {y[tk * rows + o]:R} decode {yd[o]:R}, |diff| {diff:E2} > 1e-6·Σ|x·w| = {1e-6 * s:E2}");
                            worst = Math.Max(worst, diff / s);
                            num += diff * diff; den += (double)yd[o] * yd[o];
                        }
                    }
                    output.WriteLine($"{t} k={k} width={width}: ‖gemm − decode‖/‖decode‖ = {Math.Sqrt(num / den):E2}, worst |diff|/Σ|x·w| = {worst:E2}");
                    Assert.True(Math.Sqrt(num / den) <= 1e-6, $"{t} k={k}: relative difference {Math.Sqrt(num / den):E2}");
                }
        });
    }

    [Theory]
    [InlineData(256, 1)] [InlineData(256, 3)] [InlineData(0, 2)]
    public void MatchesDequantizedProductWithinActivationRounding(int width, int threads)
    {
        // The 8-bit activations move each x_i by at most amax(block)/254: the bound of QuantMatMulTests' decode tolerance.
        TestUtil.With(width, threads, () =>
        {
            foreach (var t in Types)
                foreach (var (tokens, rows, k) in new[] { (2, 5, K256(t) ? 256 : 64), (17, 33, K256(t) ? QuantGemm.Kc + 256 : QuantGemm.Kc + 64), (11, 16, K256(t) ? 512 : 2080) })
                {
                    var rng = new Random(tokens * 100 + rows + (int)t);
                    float[] x = TestUtil.Rand(rng, tokens * k), bias = TestUtil.Rand(rng, rows);
                    var w = QuantMatMulTests.Quantized(t, rows, k, TestUtil.Rand(rng, rows * k), out var wd);
                    var expected = new float[tokens * rows];
                    ReferenceKernels.MatMul(expected, x, TestUtil.Weights(DType.F32, rows, k, wd), bias, tokens);
                    var y = Run(w, x, bias, tokens, QuantDot.Avx2Usable);
                    int ab = K256(t) ? 256 : 32;
                    TestUtil.Close(expected, y, idx =>
                    {
                        int tk = idx / rows, o = idx % rows;
                        double s = Math.Abs(bias[o]), q = 0;
                        for (int b0 = 0; b0 < k; b0 += ab)
                        {
                            float amax = 0;
                            for (int i = b0; i < b0 + ab; i++) amax = Math.Max(amax, Math.Abs(x[tk * k + i]));
                            for (int i = b0; i < b0 + ab; i++) { s += Math.Abs(x[tk * k + i] * wd[o * k + i]); q += Math.Abs(wd[o * k + i]) * amax / 254.0; }
                        }
                        return 1e-5 * s + q * 1.0001 + 1e-30;
                    }, $"{t} t={tokens} {rows}x{k}");
                }
        });
    }

    [Theory]
    [InlineData(256)] [InlineData(0)]
    public void NaNAndInfInputsGiveNaN(int width)
    {
        TestUtil.With(width, 2, () =>
        {
            foreach (var t in Types)
            {
                int rows = 19, k = K256(t) ? 512 : 96, tokens = QuantGemm.MinTokens + 1;
                var rng = new Random(5 + (int)t);
                float[] x = TestUtil.Rand(rng, tokens * k);
                x[3] = float.NaN;                          // token 0
                x[k + k - 1] = float.PositiveInfinity;      // token 1
                x[3 * k + 40] = float.NegativeInfinity;     // token 3
                var w = QuantMatMulTests.Quantized(t, rows, k, TestUtil.Rand(rng, rows * k), out _);
                var y = new float[tokens * rows];
                MatMul.Forward(y, x, w, [], tokens);
                for (int tk = 0; tk < tokens; tk++)
                    for (int o = 0; o < rows; o++)
                    {
                        float v = y[tk * rows + o];
                        if (tk is 0 or 1 or 3) Assert.True(float.IsNaN(v), $"{t} token {tk} row {o}: {v}");
                        else Assert.True(float.IsFinite(v), $"{t} token {tk} row {o}: {v}");
                    }
            }
        });
    }

    [Theory]
    [InlineData(true)] [InlineData(false)]
    public void ActivationRowsMatchDecodeQuantizer(bool simd)
    {
        foreach (bool k256 in new[] { false, true })
            foreach (int k in k256 ? new[] { 256, 1280 } : new[] { 32, 96, 1088 })
            {
                var rng = new Random(k + (k256 ? 1 : 0));
                int rows = 3;
                var x = TestUtil.Rand(rng, rows * k, 5f);
                x[k + 7] = float.NaN;
                var rowBuf = GC.AllocateArray<byte>((int)QuantRows.Bytes(rows, k, k256) + 64, pinned: true);
                var decBuf = GC.AllocateArray<byte>((int)QuantActivations.Bytes(k, k256) + 64, pinned: true);
                fixed (float* px = x)
                {
                    var ra = QuantRows.Create((byte*)(((nint)Unsafe.AsPointer(ref rowBuf[0]) + 63) & ~(nint)63), rows, k, k256);
                    for (int tk = 0; tk < rows; tk++) ra.QuantizeRow(tk, px + tk * k, simd);
                    for (int tk = 0; tk < rows; tk++)
                    {
                        var da = QuantActivations.Create((byte*)(((nint)Unsafe.AsPointer(ref decBuf[0]) + 63) & ~(nint)63), k, k256);
                        da.Quantize(px + tk * k, k256, simd);
                        for (int i = 0; i < k; i++) Assert.Equal(da.Qs[i], ra.Qs[tk * k + i]);
                        int nb = k / (k256 ? 256 : 32);
                        for (int b = 0; b < nb; b++)
                            Assert.Equal(BitConverter.SingleToInt32Bits(da.D[b]), BitConverter.SingleToInt32Bits(ra.D[tk * nb + b]));
                        if (k256)
                            for (int g = 0; g < k / 16; g++)
                            {
                                Assert.Equal(da.BSums[g], ra.B16[tk * (k / 16) + g]);
                                if (g % 2 == 0) Assert.Equal(da.BSums[g] + da.BSums[g + 1], ra.B32[tk * (k / 32) + g / 2]);
                            }
                        else
                            for (int b = 0; b < nb; b++) Assert.Equal(8 * da.S[b], ra.O8[tk * nb + b]);
                    }
                }
            }
    }

    [Theory]
    [InlineData(256)] [InlineData(0)]
    public void ForwardRoutesByTokenCount(int width)
    {
        // Under MinTokens tokens: exactly the decode kernel per token row; from MinTokens on: exactly QuantGemm.
        TestUtil.With(width, 2, () =>
        {
            foreach (var t in Types)
            {
                int rows = 21, k = K256(t) ? 512 : 160;
                var rng = new Random(17 + (int)t);
                var w = QuantMatMulTests.Quantized(t, rows, k, TestUtil.Rand(rng, rows * k), out _);
                float[] bias = TestUtil.Rand(rng, rows);
                foreach (int tokens in new[] { 2, QuantGemm.MinTokens - 1, QuantGemm.MinTokens, QuantGemm.MinTokens + 3 })
                {
                    var x = TestUtil.Rand(rng, tokens * k);
                    var y = new float[tokens * rows];
                    MatMul.Forward(y, x, w, bias, tokens);
                    Assert.True(MatMul.QuantizedUsesInt8Activations(t, tokens));
                    float[] expected;
                    if (tokens >= QuantGemm.MinTokens) expected = Run(w, x, bias, tokens, QuantDot.Avx2Usable);
                    else
                    {
                        expected = new float[tokens * rows];
                        for (int tk = 0; tk < tokens; tk++) MatMul.Forward(expected.AsSpan(tk * rows, rows), x.AsSpan(tk * k, k), w, bias, 1);
                    }
                    AssertIdentical(expected, y, $"{t} tokens={tokens}");
                }
            }
        });
    }

    [Theory]
    [InlineData(1)] [InlineData(2)]
    public void PrefillAllocatesNothing(int threads)
    {
        TestUtil.With(Simd.Native, threads, () =>
        {
            var rng = new Random(1);
            var mats = Types.Select(t => QuantMatMulTests.Quantized(t, 96, 1024, TestUtil.Rand(rng, 96 * 1024), out _)).ToArray();
            float[] x = TestUtil.Rand(rng, 37 * 1024), y = new float[37 * 96];
            foreach (var m in mats) { MatMul.Forward(y, x, m, [], 37); MatMul.Forward(y, x, m, [], 3); }   // warm-up: scratch buffers, JIT
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int rep = 0; rep < 3; rep++) foreach (var m in mats) { MatMul.Forward(y, x, m, [], 37); MatMul.Forward(y, x, m, [], 3); }
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        });
    }
}
