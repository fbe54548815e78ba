// Contract: MatMul.Forward over quantized WeightMatrix matches dequantize-then-f32-reference (stated bounds), the SIMD kernels
// match their scalar twins (every type, odd block counts), decode agrees with ggml's own vec_dot, NaN propagates, odd shapes, thread counts 1 and 3, no allocation.
using System.Runtime.CompilerServices;
using Llava.Tensors;
using Llava.Tensors.Quantization;

namespace Llava.Tensors.Tests.Quantization;

public unsafe class QuantMatMulTests(ITestOutputHelper output)
{
    static readonly GgmlType[] WeightTypes = GgmlQuant.Types.Where(t => t != GgmlType.Q8_K).ToArray();
    static readonly List<Array> Keep = [];

    internal static WeightMatrix Quantized(GgmlType t, int rows, int cols, float[] values, out float[] dequantized)
    {
        long rb = GgmlTypeInfo.RowBytes(t, cols);
        var bytes = GC.AllocateArray<byte>((int)Math.Max(1, rb * rows), pinned: true);
        Keep.Add(bytes);
        dequantized = new float[rows * cols];
        for (int r = 0; r < rows; r++)
        {
            GgmlQuant.QuantizeReference(t, values.AsSpan(r * cols, cols), bytes.AsSpan((int)(r * rb), (int)rb));
            GgmlQuant.Dequantize(t, bytes.AsSpan((int)(r * rb), (int)rb), dequantized.AsSpan(r * cols, cols));
        }
        return new WeightMatrix(t, rows, cols, Unsafe.AsPointer(ref bytes[0]));
    }

    static int BlockOf(GgmlType t) => GgmlTypeInfo.Layout(t)!.Value.BlockSize;

    // Tolerance. (a) f32 rounding, as MatMulTests: 1e-5·Σ|x·w|. (b) Decode with an integer kernel quantizes x to
    // int8 per activation block (32 values for Q4_0/Q8_0, 256 for K-quants) with step amax/127, so each x_i moves by
    // at most amax_block/254 and the output by at most Σ_i |w_i|·amax_block(i)/254 (a strict bound, typically ~10x
    // above the actual error). A dropped or mis-decoded block costs ~Σ|w|·amax/2 over that block, far above it.
    static double Tolerance(GgmlType t, float[] x, float[] wd, int tok, int o, int cols, bool integerDecode, float bias)
    {
        double s = Math.Abs(bias), q = 0;
        int ab = QuantDot.UsesK256(t) ? 256 : 32;
        for (int b0 = 0; b0 < cols; b0 += ab)
        {
            float amax = 0;
            for (int i = b0; i < b0 + ab; i++) amax = Math.Max(amax, Math.Abs(x[tok * cols + i]));
            for (int i = b0; i < b0 + ab; i++)
            {
                s += Math.Abs(x[tok * cols + i] * wd[o * cols + i]);
                q += Math.Abs(wd[o * cols + i]) * amax / 254.0;
            }
        }
        return 1e-5 * s + (integerDecode ? q * 1.0001 : 0) + 1e-30;
    }

    static void Check(GgmlType t, int tokens, int rows, int cols, bool bias, int seed)
    {
        var rng = new Random(seed);
        float[] x = TestUtil.Rand(rng, tokens * cols), wv = TestUtil.Rand(rng, rows * cols), b = bias ? TestUtil.Rand(rng, rows) : [];
        var w = Quantized(t, rows, cols, wv, out var wd);
        var expected = new float[tokens * rows];
        ReferenceKernels.MatMul(expected, x, TestUtil.Weights(DType.F32, rows, cols, wd), b, tokens);
        var actual = new float[tokens * rows];
        actual.AsSpan().Fill(float.NaN);
        MatMul.Forward(actual, x, w, b, tokens);
        bool integer = MatMul.QuantizedUsesInt8Activations(t, tokens);
        TestUtil.Close(expected, actual, i => Tolerance(t, x, wd, i / rows, i % rows, cols, integer, bias ? b[i % rows] : 0), $"{t} t={tokens} {rows}x{cols}");
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void ForwardMatchesDequantizedReference(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            foreach (var t in WeightTypes)
            {
                int bs = BlockOf(t);
                foreach (var (tokens, rows, blocks) in new[] { (1, 1, 1), (1, 37, 3), (1, 67, 2), (2, 5, 1), (7, 33, 2), (13, 19, 1), (1, 300, 4), (20, 45, 2) })
                    Check(t, tokens, rows, blocks * bs, bias: rows % 2 == 1, seed: rows * 31 + tokens + (int)t);
            }
        });
    }

    [Theory]
    [InlineData(1)] [InlineData(3)]
    public void LargerShapes(int threads)
    {
        TestUtil.With(Simd.Native, threads, () =>
        {
            foreach (var t in WeightTypes)
            {
                Check(t, 1, 515, 1024, bias: true, seed: 1);
                Check(t, 37, 129, 512, bias: false, seed: 2);
            }
        });
    }

    [Fact]
    public void SimdKernelsMatchScalarTwins()
    {
        // Same quantized activations, same integer sums: only the f32 accumulation order differs.
        foreach (var t in WeightTypes.Where(QuantDot.HasIntegerKernel))
        {
            var rng = new Random((int)t);
            int rows = 41, cols = 1280;
            float[] x = TestUtil.Rand(rng, cols, 3f), wv = TestUtil.Rand(rng, rows * cols);
            var w = Quantized(t, rows, cols, wv, out var wd);
            float[] ySimd = new float[rows], yScalar = new float[rows];
            TestUtil.With(256, 1, () => MatMul.Forward(ySimd, x, w, [], 1));
            TestUtil.With(0, 1, () => MatMul.Forward(yScalar, x, w, [], 1));
            TestUtil.Close(yScalar, ySimd, o =>
            {
                double s = 0;
                for (int i = 0; i < cols; i++) s += Math.Abs(x[i] * wd[o * cols + i]);
                return 1e-5 * s;
            }, $"{t} simd vs scalar");
        }
    }

    [Theory]
    [InlineData(512, 1)] [InlineData(256, 2)] [InlineData(256, 3)] [InlineData(0, 2)]
    public void RandomDecodeShapes(int width, int threads)
    {
        // Odd row counts (partial row items), odd block counts (the pair kernels' single-block tail), bias on/off.
        TestUtil.With(width, threads, () =>
        {
            var rng = new Random(width + threads);
            foreach (var t in WeightTypes)
                for (int rep = 0; rep < 4; rep++)
                {
                    int rows = 2 * rng.Next(1, 90) + 1, blocks = rng.Next(1, 12) | (rep & 1);
                    Check(t, 1, rows, blocks * BlockOf(t), bias: rep % 3 == 0, seed: rng.Next());
                }
        });
    }

    [Fact]
    public void SimdKernelsMatchScalarTwinsOddBlocks()
    {
        foreach (var t in WeightTypes.Where(QuantDot.HasIntegerKernel))
            foreach (int blocks in new[] { 1, 3, 5, 41 })
            {
                var rng = new Random((int)t * 7 + blocks);
                int rows = 9, cols = blocks * BlockOf(t);
                float[] x = TestUtil.Rand(rng, cols, 3f), wv = TestUtil.Rand(rng, rows * cols);
                var w = Quantized(t, rows, cols, wv, out var wd);
                float[] ySimd = new float[rows], yScalar = new float[rows];
                TestUtil.With(256, 1, () => MatMul.Forward(ySimd, x, w, [], 1));
                TestUtil.With(0, 1, () => MatMul.Forward(yScalar, x, w, [], 1));
                TestUtil.Close(yScalar, ySimd, o =>
                {
                    double s = 0;
                    for (int i = 0; i < cols; i++) s += Math.Abs(x[i] * wd[o * cols + i]);
                    return 1e-5 * s;
                }, $"{t} x{blocks} blocks simd vs scalar");
            }
    }

    [Fact]
    public void DecodeAgreesWithGgmlVecDot()
    {
        if (!GgmlNative.Available) { output.WriteLine("ggml oracle unavailable: " + GgmlNative.LoadError); return; }
        TestUtil.With(Simd.Native, 1, () =>
        {
            foreach (var t in WeightTypes)
            {
                var rng = new Random(7 + (int)t);
                int rows = 64, cols = 2048;
                float[] x = TestUtil.Rand(rng, cols), wv = TestUtil.Rand(rng, rows * cols);
                var w = Quantized(t, rows, cols, wv, out var wd);
                var vt = GgmlNative.VecDotType(t);
                var act = new byte[GgmlTypeInfo.RowBytes(vt, cols)];
                GgmlNative.FromFloatCpu(vt, x, act);
                var ours = new float[rows];
                MatMul.Forward(ours, x, w, [], 1);
                double num = 0, den = 0, worst = 0;
                for (int o = 0; o < rows; o++)
                {
                    var rowBytes = new ReadOnlySpan<byte>((byte*)w.Data + o * w.RowBytes, (int)w.RowBytes);
                    float g = GgmlNative.VecDot(t, cols, rowBytes, act);
                    // ggml quantizes x too (to vec_dot_type); both sides carry an activation-rounding error within Tolerance's bound.
                    double tol = 2 * Tolerance(t, x, wd, 0, o, cols, integerDecode: true, 0) + 1e-5;
                    Assert.True(Math.Abs(ours[o] - g) <= tol, $"{t} row {o}: ours {ours[o]} ggml {g} tol {tol}");
                    num += (ours[o] - g) * (ours[o] - g); den += (double)g * g; worst = Math.Max(worst, Math.Abs(ours[o] - g) / tol);
                }
                output.WriteLine($"{t} (ggml activations {vt}): ‖ours − ggml vec_dot‖/‖ggml‖ = {Math.Sqrt(num / den):E2}, worst |diff|/tol = {worst:F3}");
            }
        });
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void NaNPropagates(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            foreach (var t in WeightTypes)
                foreach (int tokens in new[] { 1, 9 })
                {
                    int rows = 21, cols = 2 * BlockOf(t) * (t >= GgmlType.Q2_K ? 1 : 8);
                    var rng = new Random(5);
                    float[] x = TestUtil.Rand(rng, tokens * cols), wv = TestUtil.Rand(rng, rows * cols);
                    x[3] = float.NaN;                                     // token 0: every output NaN
                    if (tokens > 1) x[cols + 5] = float.PositiveInfinity; // token 1: every output non-finite
                    var w = Quantized(t, rows, cols, wv, out _);
                    var y = new float[tokens * rows];
                    MatMul.Forward(y, x, w, [], tokens);
                    for (int o = 0; o < rows; o++) Assert.True(float.IsNaN(y[o]), $"{t} token 0 row {o}: {y[o]}");
                    if (tokens > 1) for (int o = 0; o < rows; o++) Assert.False(float.IsFinite(y[rows + o]), $"{t} token 1 row {o}: {y[rows + o]}");
                    for (int tk = 2; tk < tokens; tk++) for (int o = 0; o < rows; o++) Assert.True(float.IsFinite(y[tk * rows + o]));
                }
        });
    }

    [Fact]
    public void WeightMatrixReadsQuantizedRows()
    {
        var rng = new Random(3);
        var w = Quantized(GgmlType.Q4_K, 3, 512, TestUtil.Rand(rng, 3 * 512), out var wd);
        var row = new float[512];
        w.ReadRow(2, row);
        Assert.Equal(wd.AsSpan(1024, 512).ToArray(), row);
        Assert.Equal(wd[512 + 300], w[1, 300]);
        Assert.True(w.IsQuantized);
        Assert.Equal(144L * 2, w.RowBytes);
        Assert.Throws<ArgumentException>(() => new WeightMatrix(GgmlType.Q4_0, 2, 33, (void*)1));
        Assert.Throws<ArgumentException>(() => new WeightMatrix(GgmlType.Q8_K, 2, 256, (void*)1));
    }

    [Theory]
    [InlineData(1)] [InlineData(2)]
    public void DecodeAllocatesNothing(int threads)
    {
        TestUtil.With(Simd.Native, threads, () =>
        {
            var rng = new Random(1);
            var mats = WeightTypes.Select(t => Quantized(t, 512, 1024, TestUtil.Rand(rng, 512 * 1024), out _)).ToArray();
            float[] x = TestUtil.Rand(rng, 1024), y = new float[512];
            foreach (var m in mats) MatMul.Forward(y, x, m, [], 1);   // warm-up: scratch buffers, JIT
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int rep = 0; rep < 3; rep++) foreach (var m in mats) MatMul.Forward(y, x, m, [], 1);
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        });
    }
}
