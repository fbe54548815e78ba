// Contract: y = x · Wᵀ (+ bias) for F32/F16/BF16 and ggml-quantized weights, and f32 NT GEMM on activations; SIMD, all workers, no per-call allocation.
namespace Llava.Tensors;

/// <summary>
/// Linear layers. Forward: y[t, o] = Σ_i x[t, i] · W[o, i] (+ bias[o]); x: (tokens, W.Cols), y: (tokens, W.Rows).
/// tokens == 1 is the memory-bound decode matvec (see MatMul.Decode.cs); tokens &gt; 1 uses the packed GEMM
/// (MatMul.Gemm.cs). Accumulation is f32 with FMA; summation order differs from the scalar reference.
/// </summary>
public static unsafe partial class MatMul
{
    public static void Forward(Span<float> y, ReadOnlySpan<float> x, WeightMatrix w, ReadOnlySpan<float> bias, int tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        if (x.Length < (long)tokens * w.Cols) throw new ArgumentException($"x has {x.Length} floats, need {tokens}x{w.Cols}", nameof(x));
        if (y.Length < (long)tokens * w.Rows) throw new ArgumentException($"y has {y.Length} floats, need {tokens}x{w.Rows}", nameof(y));
        if (!bias.IsEmpty && bias.Length < w.Rows) throw new ArgumentException("bias shorter than W.Rows", nameof(bias));
        if (tokens == 0 || w.Rows == 0) return;
        fixed (float* py = y) fixed (float* px = x) fixed (float* pb = bias)
        {
            if (w.IsQuantized) QuantizedForward(py, px, w, bias.IsEmpty ? null : pb, tokens);   // MatMul.Quantized.cs
            else if (tokens == 1) Decode(py, px, w, bias.IsEmpty ? null : pb);
            else Gemm(py, px, w.DType, w.Data, w.Rows, w.Cols, bias.IsEmpty ? null : pb, tokens, accumulate: false);
        }
    }

    /// <summary>c (m x n) = a (m x k) · bᵀ with b (n x k), both row-major.</summary>
    public static void ForwardNT(Span<float> c, ReadOnlySpan<float> a, ReadOnlySpan<float> b, int m, int n, int k)
        => ForwardNT(c, a, b, m, n, k, accumulate: false);

    /// <summary>c (m x n) (+)= a (m x k) · bᵀ with b (n x k); adds into c when <paramref name="accumulate"/>.</summary>
    public static void ForwardNT(Span<float> c, ReadOnlySpan<float> a, ReadOnlySpan<float> b, int m, int n, int k, bool accumulate)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        if (a.Length < (long)m * k || b.Length < (long)n * k || c.Length < (long)m * n) throw new ArgumentException("span shorter than its shape");
        if (m == 0 || n == 0) return;
        fixed (float* pc = c) fixed (float* pa = a) fixed (float* pb = b)
        {
            if (m == 1 && !accumulate) Decode(pc, pa, new WeightMatrix(DType.F32, n, k, pb), null);
            else Gemm(pc, pa, DType.F32, pb, n, k, null, m, accumulate);
        }
    }
}
