// Contract: scaled dot-product attention with grouped-query heads and optional causal mask; f32 online softmax, SIMD, all workers, allocation-free.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
namespace Llava.Tensors;

/// <summary>
/// out[t, h] = Σ_j softmax_j(scale · q[t, h] · k[j, g]) · v[j, g], g = h / (heads / kvHeads).
/// q, out: (tokens, heads, headDim); k, v: (kvLen, kvHeads, headDim).
/// Causal: query t is at absolute position queryOffset + t and sees keys 0..queryOffset+t (clamped to kvLen);
/// otherwise it sees all kvLen keys. A query that sees no key produces NaN (0/0, like torch's softmax of an all -inf row).
/// <para>A single query (tokens == 1, decode) takes the dedicated path in Attention.Decode.cs. Otherwise: work item = (block of query tokens, kv head): all query heads of the group and all tokens of the block share
/// one pass over K and V, and keys are processed in blocks with an online (flash-attention style) softmax, so K and
/// V are streamed once per item and scratch stays small however long the cache grows.</para>
/// </summary>
public static unsafe partial class Attention
{
    const int KeyBlock = 128;      // scores per query row held at once (scratch = rows x KeyBlock)
    const int TargetRows = 16;     // query rows (tokens x group heads) per item: reuse of each K/V row from L1

    /// <summary>Shortest self-attention (tokens = keys) that takes <see cref="DenseAttention"/>.</summary>
    public const int DenseMinTokens = 32;

    /// <summary>Self-attention (queries and keys at the same positions) of DenseMinTokens..MaxTokens: forward and backward take <see cref="DenseAttention"/>.</summary>
    static bool UsesDense(int tokens, int kvLen, int headDim, bool causal, int queryOffset) =>
        tokens == kvLen && (!causal || queryOffset == 0) && headDim > 0 && tokens >= DenseMinTokens && tokens <= DenseAttention.MaxTokens;

    public static void Forward(Span<float> output, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
                               int tokens, int kvLen, int heads, int kvHeads, int headDim, float scale, bool causal, int queryOffset)
    {
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0) throw new ArgumentException($"heads ({heads}) must be a positive multiple of kvHeads ({kvHeads})");
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        ArgumentOutOfRangeException.ThrowIfNegative(kvLen);
        ArgumentOutOfRangeException.ThrowIfNegative(headDim);
        long qn = (long)tokens * heads * headDim, kn = (long)kvLen * kvHeads * headDim;
        if (q.Length < qn || output.Length < qn || k.Length < kn || v.Length < kn) throw new ArgumentException("span shorter than its shape");
        if (tokens == 0) return;
        if (tokens == 1)
        {
            fixed (float* po = output) fixed (float* pq = q) fixed (float* pk = k) fixed (float* pv = v)
                DecodeForward(po, pq, pk, pv, kvLen, heads, kvHeads, headDim, scale, causal, queryOffset);   // Attention.Decode.cs
            return;
        }
        if (UsesDense(tokens, kvLen, headDim, causal, queryOffset))
        {
            // Queries and keys at the same positions (the CLIP tower, a first prefill chunk): three GEMMs per head beat
            // one dot product per score (measured on ViT-L/14-336: a third of the encode was attention; 5.9 s → 4.3 s).
            DenseAttention.Forward(output, q, k, v, tokens, heads, kvHeads, headDim, scale, causal);
            return;
        }
        int group = heads / kvHeads;
        int blockTokens = Math.Max(1, TargetRows / group);
        int tokenBlocks = (tokens + blockTokens - 1) / blockTokens;
        fixed (float* po = output) fixed (float* pq = q) fixed (float* pk = k) fixed (float* pv = v)
        {
            var job = new Job
            {
                O = po, Q = pq, K = pk, V = pv, Tokens = tokens, KvLen = kvLen, Heads = heads, KvHeads = kvHeads, HeadDim = headDim,
                Group = group, BlockTokens = blockTokens, Scale = scale, Causal = causal, QueryOffset = queryOffset,
            };
            // An item streams K and V for its kv head (2·kvLen·headDim floats); split once a thread gets ~32K of them.
            long perItem = Math.Max(1L, 2L * kvLen * headDim * blockTokens * group);
            Workers.Run(ref job, tokenBlocks * kvHeads, (int)Math.Clamp(32768 / perItem, 1, int.MaxValue));
        }
    }

    struct Job : IParallelJob
    {
        public float* O, Q, K, V;
        public ushort* Kh, Vh;   // f16 cache instead of K, V (null for f32)
        public int Tokens, KvLen, Heads, KvHeads, HeadDim, Group, BlockTokens, QueryOffset;
        public float Scale; public bool Causal;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            int maxRows = BlockTokens * Group;
            float[] sBuf = Scratch.Get(1, maxRows * KeyBlock), oBuf = Scratch.Get(2, maxRows * Math.Max(1, HeadDim)), mBuf = Scratch.Get(3, 3 * maxRows);
            // f16 cache (Attention.F16.cs): each key block of the item's kv head is widened here, K then V.
            float[] cBuf = Kh != null ? Scratch.Get(0, 2 * KeyBlock * Math.Max(1, HeadDim)) : sBuf;
            fixed (float* s = sBuf) fixed (float* acc = oBuf) fixed (float* ml = mBuf) fixed (float* conv = cBuf)
                for (int item = start; item < end; item++)
                {
                    int tb = item / KvHeads, g = item % KvHeads;
                    int t0 = tb * BlockTokens, t1 = Math.Min(Tokens, t0 + BlockTokens);
                    Block(t0, t1, g, s, acc, ml, conv);
                }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Block(int t0, int t1, int g, float* s, float* acc, float* ml, float* conv)
        {
            int d = HeadDim, rows = (t1 - t0) * Group;
            float* m = ml, l = ml + rows, vis = ml + 2 * rows;   // running max, running sum, visible key count per row
            int maxVisible = 0;
            for (int r = 0; r < rows; r++)
            {
                int t = t0 + r / Group;
                int visible = Causal ? Math.Clamp(QueryOffset + t + 1, 0, KvLen) : KvLen;
                vis[r] = visible;
                maxVisible = Math.Max(maxVisible, visible);
                m[r] = float.NegativeInfinity; l[r] = 0;
            }
            new Span<float>(acc, rows * d).Clear();
            long kvStride = (long)KvHeads * d;
            float* kBase = K + (long)g * d, vBase = V + (long)g * d;

            for (int kb = 0; kb < maxVisible; kb += KeyBlock)
            {
                int n = Math.Min(KeyBlock, maxVisible - kb);
                // The block's K and V rows of head g: in the f32 cache, or widened from the f16 cache into conv.
                float* kBlock = kBase + kb * kvStride, vBlock = vBase + kb * kvStride;
                long rowStride = kvStride;
                if (Kh != null)
                {
                    kBlock = conv; vBlock = conv + KeyBlock * d; rowStride = d;
                    ushort* kh = Kh + (long)g * d + kb * kvStride, vh = Vh + (long)g * d + kb * kvStride;
                    for (int j = 0; j < n; j++)
                    {
                        DTypeConvert.F16ToF32(kh + j * kvStride, kBlock + j * d, d);
                        DTypeConvert.F16ToF32(vh + j * kvStride, vBlock + j * d, d);
                    }
                }
                // Scores: each key row is loaded once and dotted with every query row of the item.
                for (int j = 0; j < n; j++)
                {
                    float* kj = kBlock + j * rowStride;
                    for (int r = 0; r < rows; r++)
                        s[r * KeyBlock + j] = kb + j < (int)vis[r] ? VecOps.Dot(QRow(t0, g, r), kj, d) * Scale : float.NegativeInfinity;
                }
                // Online softmax update per row.
                for (int r = 0; r < rows; r++)
                {
                    float* sr = s + r * KeyBlock;
                    float bm = VecOps.Max(sr, n);
                    float newMax = float.IsNaN(bm) || float.IsNaN(m[r]) ? float.NaN : MathF.Max(m[r], bm);
                    if (float.IsNegativeInfinity(newMax))
                    {
                        // Nothing visible yet in this row: contributes nothing (and avoids -inf - -inf = NaN).
                        new Span<float>(sr, n).Clear();
                        continue;
                    }
                    float alpha = MathF.Exp(m[r] - newMax);   // 0 on the first visible block
                    if (alpha != 1f) { l[r] *= alpha; VecOps.Scale(acc + r * d, alpha, d); }
                    m[r] = newMax;
                    l[r] += ExpShifted(sr, n, newMax);
                }
                // acc += P · V, again one pass over the V rows of the block.
                for (int j = 0; j < n; j++)
                {
                    float* vj = vBlock + j * rowStride;
                    for (int r = 0; r < rows; r++)
                    {
                        float p = s[r * KeyBlock + j];
                        if (p != 0f) VecOps.Axpy(acc + r * d, p, vj, d);   // skips masked keys; NaN != 0 so NaN still propagates
                    }
                }
            }
            for (int r = 0; r < rows; r++)
            {
                float* dst = QRow(t0, g, r) - Q + O;
                float inv = 1.0f / l[r];
                float* a = acc + r * d;
                for (int i = 0; i < d; i++) dst[i] = a[i] * inv;
            }
        }

        // Row r of an item = (token t0 + r / Group, head g·Group + r % Group).
        float* QRow(int t0, int g, int r) => Q + ((long)(t0 + r / Group) * Heads + g * Group + r % Group) * HeadDim;
    }

    /// <summary>x[i] = exp(x[i] - max) in place; returns the sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float ExpShifted(float* x, int n, float max)
    {
        int i = 0;
        float sum = 0;
        if (Simd.Width >= 512)
        {
            Vector512<float> vm = Vector512.Create(max), a = default;
            for (; i + 16 <= n; i += 16) { var e = Vector512.Exp(Vector512.Load(x + i) - vm); e.Store(x + i); a += e; }
            sum = Vector512.Sum(a);
        }
        else if (Simd.Width >= 256)
        {
            Vector256<float> vm = Vector256.Create(max), a = default;
            for (; i + 8 <= n; i += 8) { var e = Vector256.Exp(Vector256.Load(x + i) - vm); e.Store(x + i); a += e; }
            sum = Vector256.Sum(a);
        }
        for (; i < n; i++) { float e = MathF.Exp(x[i] - max); x[i] = e; sum += e; }
        return sum;
    }
}
