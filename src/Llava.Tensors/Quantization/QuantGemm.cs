// Contract: the quantized prefill GEMM y (tokens x n) = x · Wᵀ (+ bias) for Q4_0/Q8_0/Q4_K/Q5_K/Q6_K weights: every token row
// quantized once to 8 bits (the decode scheme), integer tiles of 16 weight rows x 3 tokens (AVX2) or 6 tokens (AVX-VNNI, AVX-512BW)
// with a scalar twin, all workers, no allocation per call.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llava.Tensors.Quantization;

/// <summary>
/// Integer prefill GEMM on ggml-quantized weights, llama.cpp-style: activations are quantized per token row exactly
/// as the decode path does (<see cref="QuantActivations"/>: d = amax/127 per 32 or 256 values, int8 q, block sums),
/// then every output is Σ over blocks of (weight scale · activation scale) · (integer dot of the block), the
/// same integer sums as <see cref="QuantDot"/>'s decode kernels (only the f32 accumulation order differs).
/// <para>Blocking: a work item is a group of strips of 16 weight rows x a chunk of tokens. For each K-slice (Kc values)
/// it unpacks each strip once into a panel of bytes, laid out so that one 256-bit load holds 4
/// consecutive k of 8 rows (row = int32 lane), plus per-row scale vectors; the micro-kernel then sweeps the chunk's
/// tokens three at a time: a 4-byte broadcast of each token's activations against the two row vectors feeds
/// vpmaddubsw, int16 partials are widened (vpmaddwd, applying K-quant sub-block scales in the same instruction) per
/// block, and the float work (one FMA per 8 rows) happens once per block (32-element types) or super-block
/// (K-quants). Code offsets (−8 Q4_0, −32 Q6_K) and mins (Q4_K, Q5_K) come from the activations' block sums.
/// Slices are the item's outer loop, so a slice of the chunk's activations is reused by the group's strips.</para>
/// <para>Where AVX-VNNI exists, vpdpbusd takes the place of vpmaddubsw + vpmaddwd on 6-token tiles (QuantGemm.Vnni.cs, Q4_0 / Q8_0);
/// with AVX-512BW the K-quant kernels run on whole 16-row zmm strips, 6-token tiles (QuantGemm.Avx512.cs). See <see cref="BestPath"/>.</para>
/// <para>Each SIMD kernel has a scalar twin (<see cref="ScalarTile"/>) working straight from the ggml blocks with
/// the same integer sums and the same f32 operations in the same order, so the two agree bit for bit.</para>
/// </summary>
internal static unsafe partial class QuantGemm
{
    /// <summary>Weight rows per micro-tile: two 256-bit vectors of 8 int32 lanes.</summary>
    public const int Strip = 16;
    /// <summary>Token rows per micro-tile (AVX2 and scalar).</summary>
    public const int TileTokens = 3;
    /// <summary>Token rows per micro-tile of the VNNI and AVX-512 kernels.</summary>
    public const int VnniTileTokens = 6;
    // Blocking constants, chosen by measurement (1b shapes, 512 tokens, 2 threads; Kc 512-4096, chunks 256-512 and
    // 1-4 strips per item tried): 2048 / 512 / 2 beat 1024 / 256 / 4 by 5-15 %. Re-measured for the VNNI kernels on a
    // Xeon (Kc 1024-4096, 1-4 strips, chunk 256): no setting beat these beyond the (large, shared-machine) noise.
    /// <summary>K values per packed slice (a multiple of 256): 32 KB of packed weights per strip, swept by every token of the chunk.</summary>
    public const int Kc = 2048;
    /// <summary>Most tokens per work item (chunks are equal and a whole number of tiles): the unpacking of a strip is amortized over them.</summary>
    public const int TokenChunk = 512;
    /// <summary>Strips per work item (slices are the outer loop: a slice of the chunk's activations is reused by each strip).</summary>
    public const int StripsPerItem = 2;
    /// <summary>Smallest token count that takes this path (below: the decode kernel per token row, see MatMul.Quantized.cs).
    /// Measured crossover on 2048 x 2048 weights, 2 threads: 8-12 tokens.</summary>
    public const int MinTokens = 8;

    /// <summary>Weight types with an integer prefill kernel.</summary>
    public static bool Supports(GgmlType t) => t is GgmlType.Q4_0 or GgmlType.Q8_0 or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K;

    /// <summary>Micro-kernel families: the scalar twin; AVX2 (vpmaddubsw + vpmaddwd, 3-token tiles); AVX-VNNI (vpdpbusd, 6-token
    /// tiles; Q4_0, Q8_0); AVX-512BW (the AVX2 scheme on 16-row zmm, 6-token tiles; K-quants). A path runs two AVX2 tiles for
    /// the types it has no kernel of, so every path serves every type.</summary>
    public enum KernelPath { Scalar, Avx2, Vnni, Avx512 }

    /// <summary>Token rows per micro-tile of <paramref name="path"/>: VNNI needs 12 independent vpdpbusd chains (latency 5,
    /// 2 per cycle) to stay busy, i.e. 6 tokens x 2 row vectors; AVX2's int16 adds are short chains, 3 tokens suffice.</summary>
    public static int TileTokensOf(KernelPath path) => path is KernelPath.Vnni or KernelPath.Avx512 ? VnniTileTokens : TileTokens;

    /// <summary>The fastest path for <paramref name="type"/> on this machine (measured on a Xeon with both: VNNI for Q4_0 / Q8_0,
    /// AVX-512 for the K-quants, whose per-sub-block integer scales cost VNNI a vpmulld each); <paramref name="simd"/> false
    /// (no AVX2, or Simd.Width 0) = the scalar twin. AVX-512 only where Vector512 is accelerated (Simd.Width 512).</summary>
    public static KernelPath BestPath(GgmlType type, bool simd) =>
        !simd ? KernelPath.Scalar
        : QuantDot.UsesK256(type) ? (Avx512BW.IsSupported && Simd.Width >= 512 ? KernelPath.Avx512 : KernelPath.Avx2)
        : AvxVnni.IsSupported ? KernelPath.Vnni : KernelPath.Avx2;

    /// <summary>y (tokens x n) = x (tokens x k) · Wᵀ (+ bias); W is n rows of <paramref name="rowBytes"/> bytes of <paramref name="type"/> blocks.</summary>
    public static void Forward(float* y, float* x, byte* w, long rowBytes, GgmlType type, int n, int k, float* bias, int tokens, bool simd)
        => Forward(y, x, w, rowBytes, type, n, k, bias, tokens, BestPath(type, simd));

    /// <summary>As above on a given kernel path (tests force each one the machine supports).</summary>
    public static void Forward(float* y, float* x, byte* w, long rowBytes, GgmlType type, int n, int k, float* bias, int tokens, KernelPath path)
    {
        if (!Supports(type)) throw new NotSupportedException($"no integer prefill kernel for {type}");
        if (path == KernelPath.Vnni && !AvxVnni.IsSupported) throw new PlatformNotSupportedException("AVX-VNNI");
        if (path == KernelPath.Avx512 && !Avx512BW.IsSupported) throw new PlatformNotSupportedException("AVX-512BW");
        if (tokens <= 0 || n <= 0) return;
        bool simd = path != KernelPath.Scalar;
        bool k256 = QuantDot.UsesK256(type);
        // Activations live in the calling thread's scratch; the workers only read them.
        var act = QuantRows.Create(QuantScratch.Get(0, QuantRows.Bytes(tokens, k, k256)), tokens, k, k256);
        var qjob = new QuantizeJob { X = x, Act = act, Simd = simd };
        Workers.Run(ref qjob, tokens, Math.Max(1, 16384 / Math.Max(1, k)));

        int tt = TileTokensOf(path);
        int strips = (n + Strip - 1) / Strip, chunks = (tokens + TokenChunk - 1) / TokenChunk;
        // Equal chunks, each a whole number of token tiles (the last one may be shorter).
        int chunkTokens = ((tokens + chunks - 1) / chunks + tt - 1) / tt * tt;
        chunks = (tokens + chunkTokens - 1) / chunkTokens;
        // Fewer strips per item when there would be too few items to keep every thread busy (≥ 4 per thread).
        int group = Math.Max(1, Math.Min(StripsPerItem, strips * chunks / (4 * Workers.ThreadCount)));
        int groups = (strips + group - 1) / group;
        var job = new GemmJob
        {
            Y = y, Bias = bias, W = w, RowBytes = rowBytes, Type = type, N = n, K = k, Tokens = tokens,
            Strips = strips, Group = group, Groups = groups, ChunkTokens = chunkTokens, Act = act, Path = path,
        };
        Workers.Run(ref job, groups * chunks, 1);
    }

    struct QuantizeJob : IParallelJob
    {
        public float* X; public QuantRows Act; public bool Simd;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            for (int t = start; t < end; t++) Act.QuantizeRow(t, X + (long)t * Act.K, Simd);
        }
    }

    struct GemmJob : IParallelJob
    {
        public float* Y, Bias; public byte* W; public long RowBytes; public GgmlType Type;
        public int N, K, Tokens, Strips, Group, Groups, ChunkTokens; public QuantRows Act; public KernelPath Path;

        // An item is a group of strips x a token chunk. Slices are the outer loop so that a slice of the chunk's
        // activations is reused from L2 by every strip of the group; each strip's packed slice stays in L1 while
        // the chunk's tokens sweep over it.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            int kcMax = Math.Min(Kc, K), tt = TileTokensOf(Path);
            bool simd = Path != KernelPath.Scalar, vnni = Path == KernelPath.Vnni, z512 = Path == KernelPath.Avx512;
            byte* pack = simd ? QuantScratch.Get(1, PackBytes(Type, kcMax)) : null;
            float* tile = stackalloc float[VnniTileTokens * Strip];
            int* ts = stackalloc int[VnniTileTokens];
            for (int item = start; item < end; item++)
            {
                int g = item % Groups, c = item / Groups;
                int s0 = g * Group, s1 = Math.Min(Strips, s0 + Group);
                int t0 = c * ChunkTokens, t1 = Math.Min(Tokens, t0 + ChunkTokens);
                for (int k0 = 0; k0 < K; k0 += Kc)
                {
                    int kc = Math.Min(Kc, K - k0);
                    for (int s = s0; s < s1; s++)
                    {
                        int r0 = s * Strip, nr = Math.Min(Strip, N - r0);
                        byte* wrow = W + r0 * RowBytes;
                        if (simd) Pack(Type, wrow, RowBytes, nr, k0, kc, pack, vnni);
                        for (int t = t0; t < t1; t += tt)
                        {
                            // A last tile short of tokens repeats its last token in the spare rows (computed, not written).
                            for (int i = 0; i < tt; i++) ts[i] = Math.Min(t + i, t1 - 1);
                            if (vnni) VnniKernel(Type, pack, kc, Act, ts, k0, tile);
                            else if (z512) Avx512Kernel(Type, pack, kc, Act, ts, k0, tile);
                            else if (simd) Kernel(Type, pack, kc, Act, ts[0], ts[1], ts[2], k0, tile);
                            else ScalarTile(Type, wrow, RowBytes, nr, k0, kc, Act, ts[0], ts[1], ts[2], tile);
                            Merge(tile, t, Math.Min(tt, t1 - t), r0, nr, k0 == 0);
                        }
                    }
                }
            }
        }

        // First slice: y = tile (+ bias); later slices: y += tile. Only the strip's valid rows are written.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Merge(float* tile, int t, int count, int r0, int nr, bool first)
        {
            for (int i = 0; i < count; i++)
            {
                float* yr = Y + (long)(t + i) * N + r0;
                float* tr = tile + i * Strip;
                if (nr == Strip && Vector256.IsHardwareAccelerated)
                {
                    var a = Vector256.Load(tr); var b = Vector256.Load(tr + 8);
                    if (!first) { a += Vector256.Load(yr); b += Vector256.Load(yr + 8); }
                    else if (Bias != null) { a += Vector256.Load(Bias + r0); b += Vector256.Load(Bias + r0 + 8); }
                    Vector256.Store(a, yr); Vector256.Store(b, yr + 8);
                    continue;
                }
                for (int r = 0; r < nr; r++)
                    yr[r] = !first ? yr[r] + tr[r] : Bias == null ? tr[r] : tr[r] + Bias[r0 + r];
            }
        }
    }
}

/// <summary>
/// Token rows of 8-bit activations for the prefill GEMM, each quantized exactly as <see cref="QuantActivations.Quantize"/>
/// would (same d and q, bit for bit): <see cref="Qs"/> (rows x K int8), <see cref="D"/> (one scale per 32 or 256
/// values), and the block sums the kernels need: <see cref="O8"/> (8·Σq per 32, Q4_0's code offset; 32-element types) or
/// <see cref="B16"/> (Σq per 16, = Q8_K's bsums) and <see cref="B32"/> (Σq per 32) for K-quants.
/// </summary>
internal unsafe struct QuantRows
{
    public sbyte* Qs; public float* D; public int* O8; public short* B16; public short* B32;
    public int K, Rows; public bool K256;

    public int BlockSize => K256 ? 256 : 32;
    public int Blocks => K / BlockSize;

    public static long Bytes(int rows, int k, bool k256)
    {
        long q = ((long)rows * k + 63) & ~63L;
        long d = ((long)rows * (k / (k256 ? 256 : 32)) * 4 + 63) & ~63L;
        long sums = k256 ? (((long)rows * (k / 16) * 2 + 63) & ~63L) + (((long)rows * (k / 32) * 2 + 63) & ~63L)
                         : ((long)rows * (k / 32) * 4 + 63) & ~63L;
        return q + d + sums + 64;
    }

    public static QuantRows Create(byte* buf, int rows, int k, bool k256)
    {
        var a = new QuantRows { K = k, Rows = rows, K256 = k256, Qs = (sbyte*)buf };
        byte* p = buf + (((long)rows * k + 63) & ~63L);
        a.D = (float*)p; p += ((long)rows * (k / (k256 ? 256 : 32)) * 4 + 63) & ~63L;
        if (k256)
        {
            a.B16 = (short*)p; p += ((long)rows * (k / 16) * 2 + 63) & ~63L;
            a.B32 = (short*)p;
        }
        else a.O8 = (int*)p;
        return a;
    }

    /// <summary>Quantizes token row <paramref name="t"/> from <paramref name="x"/> (K floats).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void QuantizeRow(int t, float* x, bool simd)
    {
        int bs = BlockSize, nb = K / bs;
        sbyte* q = Qs + (long)t * K;
        float* d = D + (long)t * nb;
        for (int b = 0; b < nb; b++) d[b] = QuantActivations.QuantizeBlock(x + b * bs, q + b * bs, bs, simd);
        int n32 = K / 32;
        if (simd && Avx2.IsSupported) Sums256(q, n32, t);
        else
            for (int c = 0; c < n32; c++)
            {
                int lo = 0, hi = 0;
                for (int i = 0; i < 16; i++) { lo += q[32 * c + i]; hi += q[32 * c + 16 + i]; }
                Store(t, c, lo, hi);
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void Store(int t, int c, int lo, int hi)
    {
        if (K256)
        {
            long o = (long)t * (K / 32) + c;
            B16[2 * o] = (short)lo; B16[2 * o + 1] = (short)hi; B32[o] = (short)(lo + hi);
        }
        else O8[(long)t * (K / 32) + c] = 8 * (lo + hi);
    }

    // Σ of each 16 bytes: vpmaddubsw with ones (pairs), vpmaddwd with ones (quads), two horizontal adds.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void Sums256(sbyte* q, int n32, int t)
    {
        var ones8 = Vector256.Create((byte)1);
        var ones16 = Vector256.Create((short)1);
        for (int c = 0; c < n32; c++)
        {
            var v = Vector256.Load(q + 32 * c);
            var p = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ones8, v), ones16);
            var h = Ssse3.HorizontalAdd(p.GetLower(), p.GetUpper());
            h = Ssse3.HorizontalAdd(h, h);
            Store(t, c, h.GetElement(0), h.GetElement(1));
        }
    }
}
