// Contract: scalar twins of the f16 KV cache kernels: f32↔f16 conversion through System.Half one value at a time, and attention over f16 K/V as ReferenceKernels.Attention on the widened values.
namespace Llava.Tensors;

/// <summary>Reference implementations for the f16 KV cache (no intrinsics, no threads).</summary>
public static class F16KvReference
{
    /// <summary>Round-to-nearest-even f32 → f16; twin of <see cref="DTypeConvert.F32ToF16"/>.</summary>
    public static void F32ToF16(ReadOnlySpan<float> src, Span<Half> dst)
    {
        for (int i = 0; i < src.Length; i++) dst[i] = (Half)src[i];
    }

    /// <summary>Exact f16 → f32; twin of <see cref="DTypeConvert.F16ToF32(ushort*, float*, int)"/>.</summary>
    public static void F16ToF32(ReadOnlySpan<Half> src, Span<float> dst)
    {
        for (int i = 0; i < src.Length; i++) dst[i] = (float)src[i];
    }

    /// <summary>Attention with K and V stored as f16; twin of <see cref="Tensors.Attention.ForwardF16Kv"/>.</summary>
    public static void Attention(Span<float> output, ReadOnlySpan<float> q, ReadOnlySpan<Half> k, ReadOnlySpan<Half> v,
                                 int tokens, int kvLen, int heads, int kvHeads, int headDim, float scale, bool causal, int queryOffset)
    {
        int n = kvLen * kvHeads * headDim;
        var kf = new float[n];
        var vf = new float[n];
        F16ToF32(k[..n], kf);
        F16ToF32(v[..n], vf);
        ReferenceKernels.Attention(output, q, kf, vf, tokens, kvLen, heads, kvHeads, headDim, scale, causal, queryOffset);
    }
}
