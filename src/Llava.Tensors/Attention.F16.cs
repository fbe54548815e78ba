// Contract: attention over an f16 KV cache (llama.cpp's default cache type): same maths, blocking, threading and NaN rules as the f32 kernels; K/V rows are widened exactly to f32 in small per-thread scratch (prefill: one key block of one kv head; decode: 4 rows of one kv head), allocation-free.
namespace Llava.Tensors;

public static unsafe partial class Attention
{
    /// <summary>
    /// <see cref="Forward"/> with K and V stored as f16, (kvLen, kvHeads, headDim). The result equals
    /// <see cref="Forward"/> on the exactly widened f32 K and V (same kernels after the widening); the only
    /// difference from an f32 cache is the f16 rounding of the stored K and V. Scalar twin: <see cref="F16KvReference.Attention"/>.
    /// </summary>
    public static void ForwardF16Kv(Span<float> output, ReadOnlySpan<float> q, ReadOnlySpan<Half> k, ReadOnlySpan<Half> v,
                                    int tokens, int kvLen, int heads, int kvHeads, int headDim, float scale, bool causal, int queryOffset)
    {
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0) throw new ArgumentException($"heads ({heads}) must be a positive multiple of kvHeads ({kvHeads})");
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        ArgumentOutOfRangeException.ThrowIfNegative(kvLen);
        ArgumentOutOfRangeException.ThrowIfNegative(headDim);
        long qn = (long)tokens * heads * headDim, kn = (long)kvLen * kvHeads * headDim;
        if (q.Length < qn || output.Length < qn || k.Length < kn || v.Length < kn) throw new ArgumentException("span shorter than its shape");
        if (tokens == 0) return;
        fixed (float* po = output) fixed (float* pq = q) fixed (Half* pk = k) fixed (Half* pv = v)
        {
            ushort* kh = (ushort*)pk, vh = (ushort*)pv;
            if (tokens == 1)
            {
                DecodeForward(po, pq, null, null, kvLen, heads, kvHeads, headDim, scale, causal, queryOffset, kh, vh);   // Attention.Decode.cs
                return;
            }
            int group = heads / kvHeads;
            int blockTokens = Math.Max(1, TargetRows / group);
            int tokenBlocks = (tokens + blockTokens - 1) / blockTokens;
            var job = new Job
            {
                O = po, Q = pq, Kh = kh, Vh = vh, Tokens = tokens, KvLen = kvLen, Heads = heads, KvHeads = kvHeads, HeadDim = headDim,
                Group = group, BlockTokens = blockTokens, Scale = scale, Causal = causal, QueryOffset = queryOffset,
            };
            long perItem = Math.Max(1L, 2L * kvLen * headDim * blockTokens * group);
            Workers.Run(ref job, tokenBlocks * kvHeads, (int)Math.Clamp(32768 / perItem, 1, int.MaxValue));
        }
    }
}
