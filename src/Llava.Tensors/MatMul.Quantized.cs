// Contract: y = x · Wᵀ (+ bias) for ggml block-quantized W: decode = 8-bit activations × integer kernels (every block type,
// AVX-VNNI / AVX2 with scalar twins; a type without one would fall back to per-row dequantize + f32 dot); prefill = for Q4_0, Q8_0,
// Q4_K, Q5_K, Q6_K the integer GEMM (QuantGemm, same 8-bit activations as decode; under QuantGemm.MinTokens tokens the decode
// kernel per token row), for the other types the packed f32 GEMM dequantizing each Kc-slice once per item. No allocation per call.
using System.Runtime.CompilerServices;
using Llava.Tensors.Quantization;

namespace Llava.Tensors;

public static unsafe partial class MatMul
{
    const int QuantDecodeRowsPerItem = 8;

    static void QuantizedForward(float* y, float* x, WeightMatrix w, float* bias, int tokens)
    {
        if (tokens == 1) QuantDecode(y, x, w, bias);
        else if (QuantGemm.Supports(w.Format))
        {
            // Few tokens: the decode kernel per token row (it streams W once per token, but skips the GEMM's
            // unpacking of W into panels, which only pays off from about QuantGemm.MinTokens tokens on).
            if (tokens >= QuantGemm.MinTokens && w.Cols > 0)
                QuantGemm.Forward(y, x, (byte*)w.Data, w.RowBytes, w.Format, w.Rows, w.Cols, bias, tokens, QuantDot.Avx2Usable);
            else
                for (int t = 0; t < tokens; t++) QuantDecode(y + (long)t * w.Rows, x + (long)t * w.Cols, w, bias);
        }
        else Gemm(y, x, DType.F32, w.Data, w.Rows, w.Cols, bias, tokens, accumulate: false, quant: w.Format);
    }

    /// <summary>True when <see cref="Forward"/> on a <paramref name="t"/>-quantized W with this many tokens rounds the
    /// activations to 8 bits (decode kernels, or the integer prefill GEMM), false when it runs the f32 GEMM.</summary>
    internal static bool QuantizedUsesInt8Activations(GgmlType t, int tokens) =>
        QuantDot.HasIntegerKernel(t) && (tokens == 1 || QuantGemm.Supports(t));

    static void QuantDecode(float* y, float* x, WeightMatrix w, float* bias)
    {
        bool integer = QuantDot.HasIntegerKernel(w.Format);
        var kernel = QuantDot.Current;
        bool simd = kernel != QuantDot.Kernel.Scalar;
        var job = new QuantDecodeJob
        {
            Y = y, X = x, Bias = bias, W = (byte*)w.Data, RowBytes = w.RowBytes, Type = w.Format, Rows = w.Rows, Cols = w.Cols,
            Integer = integer, Kernel = kernel,
        };
        if (integer)
        {
            // Activations are quantized once, on the calling thread, into its scratch; workers only read them.
            bool k256 = QuantDot.UsesK256(w.Format);
            job.Act = QuantActivations.Create(QuantScratch.Get(0, QuantActivations.Bytes(w.Cols, k256)), w.Cols, k256);
            job.Act.Quantize(x, k256, simd);
        }
        int items = (w.Rows + QuantDecodeRowsPerItem - 1) / QuantDecodeRowsPerItem;
        long bytesPerItem = Math.Max(1, w.RowBytes * QuantDecodeRowsPerItem);
        Workers.Run(ref job, items, (int)Math.Max(1, 65536 / bytesPerItem));
    }

    struct QuantDecodeJob : IParallelJob
    {
        public float* Y, X, Bias; public byte* W; public long RowBytes; public GgmlType Type; public int Rows, Cols;
        public QuantActivations Act; public bool Integer; public QuantDot.Kernel Kernel;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            int r0 = start * QuantDecodeRowsPerItem, r1 = Math.Min(Rows, end * QuantDecodeRowsPerItem);
            if (Integer) { QuantDot.DotRows(Type, W, RowBytes, r0, r1, Act, Kernel, Y, Bias); return; }
            float* row = (float*)QuantScratch.Get(1, (long)Cols * 4);
            for (int r = r0; r < r1; r++)
            {
                DequantizeSlice(Type, W + r * RowBytes, 0, Cols, row);
                float s = VecOps.Dot(row, X, Cols);
                Y[r] = Bias == null ? s : s + Bias[r];
            }
        }
    }

    /// <summary>Dequantizes elements [k0, k0 + count) of one quantized row (both multiples of the block size) to f32, exactly as ggml.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void DequantizeSlice(GgmlType type, byte* row, int k0, int count, float* dst)
    {
        var (bs, ts) = GgmlTypeInfo.Layout(type)!.Value;
        byte* p = row + (long)(k0 / bs) * ts;
        GgmlQuant.Dequantize(type, new ReadOnlySpan<byte>(p, count / bs * ts), new Span<float>(dst, count));
    }
}
