// Contract: the tokens > 1 path: y (tokens x n) (+)= x (tokens x k) · Wᵀ, W (n x k) in F32/F16/BF16; packed, register-blocked, multi-threaded.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

public static unsafe partial class MatMul
{
    // BLAS-style blocking. A work item is (block of Nc weight rows) x (chunk of TokenChunk tokens). For each Kc-slice of
    // the inner dimension the item widens its Nc x Kc weight block to f32 once, packed into panels of Nr rows stored
    // k-major (panel[kk][r]), then sweeps its tokens Mr at a time: the micro-kernel keeps an Mr x Nr tile of y in
    // 12 vector registers, broadcasting one x value and loading Nr weights per k step (12 FMAs per 8 loads).
    // Sizes: panel = Kc·Nr floats (16 KB at AVX2, 32 KB at AVX-512: L1), block = Nc·Kc floats (L2), x tile Mr·Kc (L1).
    const int Mr = 6;
    const int Kc = 256;
    const int PanelsPerBlock = 8;       // Nc = 8·Nr: each x tile loaded into L1 is reused across 8 panels
    const int TokenChunk = 32 * Mr;     // tokens per item: amortizes packing over 192 tokens, keeps items plentiful, y tile in L2

    // quant: a ggml block type when W is quantized (dtype is then ignored); Pack dequantizes whole blocks (Kc is a multiple of 256).
    static void Gemm(float* y, float* x, DType dtype, void* w, int n, int k, float* bias, int tokens, bool accumulate, GgmlType quant = GgmlType.F32)
    {
        int width = Simd.Width;
        bool quantized = quant != GgmlType.F32;
        if (width == 0)
        {
            var matrix = quantized ? new WeightMatrix(quant, n, k, w) : new WeightMatrix(dtype, n, k, w);
            var simple = new SimpleGemmJob { Y = y, X = x, W = matrix, Bias = bias, Tokens = tokens, Accumulate = accumulate };
            Workers.Run(ref simple, n, 4);
            return;
        }
        int nr = width == 512 ? 32 : 16;
        int nc = nr * PanelsPerBlock;
        int rowBlocks = (n + nc - 1) / nc, tokenChunks = (tokens + TokenChunk - 1) / TokenChunk;
        var job = new GemmJob
        {
            Y = y, X = x, W = w, DType = dtype, N = n, K = k, Bias = bias, Tokens = tokens, Accumulate = accumulate,
            Nr = nr, Nc = nc, RowBlocks = rowBlocks, Wide = width == 512,
            Quant = quant, RowBytes = quantized ? GgmlTypeInfo.RowBytes(quant, k) : 0,
        };
        // An item is ≥ Nc·TokenChunk·Kc·2 flops once k ≥ Kc; split whenever there are two of them.
        Workers.Run(ref job, rowBlocks * tokenChunks, 1);
    }

    struct GemmJob : IParallelJob
    {
        public float* Y, X, Bias; public void* W; public DType DType;
        public int N, K, Tokens, Nr, Nc, RowBlocks; public bool Accumulate, Wide;
        public GgmlType Quant; public long RowBytes;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            int kcMax = Math.Min(Kc, Math.Max(1, K));
            float[] buf = Scratch.Get(0, Nc * kcMax + kcMax + Mr * Nr);
            fixed (float* b = buf)
            {
                float* packed = b, row = b + Nc * kcMax, tile = row + kcMax;
                for (int item = start; item < end; item++)
                {
                    int rb = item % RowBlocks, tc = item / RowBlocks;
                    int o0 = rb * Nc, rows = Math.Min(Nc, N - o0);
                    int t0 = tc * TokenChunk, t1 = Math.Min(Tokens, t0 + TokenChunk);
                    if (K == 0) { InitOnly(o0, rows, t0, t1); continue; }
                    for (int k0 = 0; k0 < K; k0 += Kc)
                    {
                        int kc = Math.Min(Kc, K - k0);
                        Pack(packed, row, o0, rows, k0, kc);
                        // First slice writes bias (or 0) + partial sum; later slices, and accumulate mode, add into y.
                        bool add = Accumulate || k0 > 0;
                        int panels = (rows + Nr - 1) / Nr;
                        int t = t0;
                        for (; t + Mr <= t1; t += Mr)
                            for (int p = 0; p < panels; p++)
                                Tile(Mr, t, o0 + p * Nr, Math.Min(Nr, rows - p * Nr), packed + p * kc * Nr, k0, kc, add, tile);
                        for (; t < t1; t++)
                            for (int p = 0; p < panels; p++)
                                Tile(1, t, o0 + p * Nr, Math.Min(Nr, rows - p * Nr), packed + p * kc * Nr, k0, kc, add, tile);
                    }
                }
            }
        }

        void InitOnly(int o0, int rows, int t0, int t1)
        {
            if (Accumulate) return;   // k == 0: adding an empty product changes nothing
            for (int t = t0; t < t1; t++)
                for (int o = o0; o < o0 + rows; o++) Y[(long)t * N + o] = Bias == null ? 0 : Bias[o];
        }

        // Widens W[o0 .. o0+rows, k0 .. k0+kc) to f32 and stores it as panels of Nr rows, k-major; missing rows are 0.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Pack(float* packed, float* row, int o0, int rows, int k0, int kc)
        {
            int panels = (rows + Nr - 1) / Nr;
            for (int r = 0; r < panels * Nr; r++)
            {
                float* dst = packed + (r / Nr) * kc * Nr + (r % Nr);
                if (r >= rows) { for (int kk = 0; kk < kc; kk++) dst[kk * Nr] = 0; continue; }
                float* src;
                long offset = (long)(o0 + r) * K + k0;
                if (Quant != GgmlType.F32)
                {
                    DequantizeSlice(Quant, (byte*)W + (o0 + r) * RowBytes, k0, kc, row);
                    src = row;
                }
                else switch (DType)
                {
                    case DType.F32: src = (float*)W + offset; break;
                    case DType.BF16: DTypeConvert.BF16ToF32(new ReadOnlySpan<ushort>((ushort*)W + offset, kc), new Span<float>(row, kc)); src = row; break;
                    default: DTypeConvert.F16ToF32(new ReadOnlySpan<Half>((Half*)W + offset, kc), new Span<float>(row, kc)); src = row; break;
                }
                for (int kk = 0; kk < kc; kk++) dst[kk * Nr] = src[kk];
            }
        }

        // y[t .. t+mr, o .. o+cols) (+)= x[t .. t+mr, k0 .. k0+kc) · panelᵀ.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Tile(int mr, int t, int o, int cols, float* panel, int k0, int kc, bool add, float* tile)
        {
            float* x = X + (long)t * K + k0;
            bool full = cols == Nr;
            float* dst = full ? Y + (long)t * N + o : tile;
            int ldd = full ? N : Nr;
            bool addHere = full && add;
            float* biasHere = full && !add && Bias != null ? Bias + o : null;
            if (Wide)
            {
                if (mr == Mr) Kernel512x6(x, K, panel, kc, dst, ldd, addHere, biasHere);
                else Kernel512x1(x, panel, kc, dst, addHere, biasHere);
            }
            else
            {
                if (mr == Mr) Kernel256x6(x, K, panel, kc, dst, ldd, addHere, biasHere);
                else Kernel256x1(x, panel, kc, dst, addHere, biasHere);
            }
            if (full) return;
            // Ragged last panel: merge only the valid columns from the scratch tile.
            for (int i = 0; i < mr; i++)
            {
                float* yr = Y + (long)(t + i) * N + o;
                for (int c = 0; c < cols; c++)
                    yr[c] = add ? yr[c] + tile[i * Nr + c] : tile[i * Nr + c] + (Bias == null ? 0 : Bias[o + c]);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store256(float* d, Vector256<float> c0, Vector256<float> c1, bool add, float* bias)
    {
        if (add) { c0 += Vector256.Load(d); c1 += Vector256.Load(d + 8); }
        else if (bias != null) { c0 += Vector256.Load(bias); c1 += Vector256.Load(bias + 8); }
        Vector256.Store(c0, d); Vector256.Store(c1, d + 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel256x6(float* x, int ldx, float* p, int kc, float* d, int ldd, bool add, float* bias)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
                         c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        float* x0 = x, x1 = x + ldx, x2 = x1 + ldx, x3 = x2 + ldx, x4 = x3 + ldx, x5 = x4 + ldx;
        for (int kk = 0; kk < kc; kk++, p += 16)
        {
            var b0 = Vector256.Load(p); var b1 = Vector256.Load(p + 8);
            var a = Vector256.Create(x0[kk]); c00 = Vector256.FusedMultiplyAdd(a, b0, c00); c01 = Vector256.FusedMultiplyAdd(a, b1, c01);
            a = Vector256.Create(x1[kk]); c10 = Vector256.FusedMultiplyAdd(a, b0, c10); c11 = Vector256.FusedMultiplyAdd(a, b1, c11);
            a = Vector256.Create(x2[kk]); c20 = Vector256.FusedMultiplyAdd(a, b0, c20); c21 = Vector256.FusedMultiplyAdd(a, b1, c21);
            a = Vector256.Create(x3[kk]); c30 = Vector256.FusedMultiplyAdd(a, b0, c30); c31 = Vector256.FusedMultiplyAdd(a, b1, c31);
            a = Vector256.Create(x4[kk]); c40 = Vector256.FusedMultiplyAdd(a, b0, c40); c41 = Vector256.FusedMultiplyAdd(a, b1, c41);
            a = Vector256.Create(x5[kk]); c50 = Vector256.FusedMultiplyAdd(a, b0, c50); c51 = Vector256.FusedMultiplyAdd(a, b1, c51);
        }
        Store256(d, c00, c01, add, bias); Store256(d + ldd, c10, c11, add, bias);
        Store256(d + 2 * ldd, c20, c21, add, bias); Store256(d + 3 * ldd, c30, c31, add, bias);
        Store256(d + 4 * ldd, c40, c41, add, bias); Store256(d + 5 * ldd, c50, c51, add, bias);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel256x1(float* x, float* p, int kc, float* d, bool add, float* bias)
    {
        Vector256<float> c0 = default, c1 = default;
        for (int kk = 0; kk < kc; kk++, p += 16)
        {
            var a = Vector256.Create(x[kk]);
            c0 = Vector256.FusedMultiplyAdd(a, Vector256.Load(p), c0); c1 = Vector256.FusedMultiplyAdd(a, Vector256.Load(p + 8), c1);
        }
        Store256(d, c0, c1, add, bias);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store512(float* d, Vector512<float> c0, Vector512<float> c1, bool add, float* bias)
    {
        if (add) { c0 += Vector512.Load(d); c1 += Vector512.Load(d + 16); }
        else if (bias != null) { c0 += Vector512.Load(bias); c1 += Vector512.Load(bias + 16); }
        Vector512.Store(c0, d); Vector512.Store(c1, d + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel512x6(float* x, int ldx, float* p, int kc, float* d, int ldd, bool add, float* bias)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
                         c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        float* x0 = x, x1 = x + ldx, x2 = x1 + ldx, x3 = x2 + ldx, x4 = x3 + ldx, x5 = x4 + ldx;
        for (int kk = 0; kk < kc; kk++, p += 32)
        {
            var b0 = Vector512.Load(p); var b1 = Vector512.Load(p + 16);
            var a = Vector512.Create(x0[kk]); c00 = Vector512.FusedMultiplyAdd(a, b0, c00); c01 = Vector512.FusedMultiplyAdd(a, b1, c01);
            a = Vector512.Create(x1[kk]); c10 = Vector512.FusedMultiplyAdd(a, b0, c10); c11 = Vector512.FusedMultiplyAdd(a, b1, c11);
            a = Vector512.Create(x2[kk]); c20 = Vector512.FusedMultiplyAdd(a, b0, c20); c21 = Vector512.FusedMultiplyAdd(a, b1, c21);
            a = Vector512.Create(x3[kk]); c30 = Vector512.FusedMultiplyAdd(a, b0, c30); c31 = Vector512.FusedMultiplyAdd(a, b1, c31);
            a = Vector512.Create(x4[kk]); c40 = Vector512.FusedMultiplyAdd(a, b0, c40); c41 = Vector512.FusedMultiplyAdd(a, b1, c41);
            a = Vector512.Create(x5[kk]); c50 = Vector512.FusedMultiplyAdd(a, b0, c50); c51 = Vector512.FusedMultiplyAdd(a, b1, c51);
        }
        Store512(d, c00, c01, add, bias); Store512(d + ldd, c10, c11, add, bias);
        Store512(d + 2 * ldd, c20, c21, add, bias); Store512(d + 3 * ldd, c30, c31, add, bias);
        Store512(d + 4 * ldd, c40, c41, add, bias); Store512(d + 5 * ldd, c50, c51, add, bias);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel512x1(float* x, float* p, int kc, float* d, bool add, float* bias)
    {
        Vector512<float> c0 = default, c1 = default;
        for (int kk = 0; kk < kc; kk++, p += 32)
        {
            var a = Vector512.Create(x[kk]);
            c0 = Vector512.FusedMultiplyAdd(a, Vector512.Load(p), c0); c1 = Vector512.FusedMultiplyAdd(a, Vector512.Load(p + 16), c1);
        }
        Store512(d, c0, c1, add, bias);
    }

    // Scalar (no SIMD) fallback: widen each W row once, reuse it for every token.
    struct SimpleGemmJob : IParallelJob
    {
        public float* Y, X, Bias; public WeightMatrix W; public int Tokens; public bool Accumulate;
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            int n = W.Rows, k = W.Cols;
            var buf = Scratch.Get(0, k);
            fixed (float* row = buf)
                for (int o = start; o < end; o++)
                {
                    W.ReadRow(o, buf);
                    float b = Bias == null ? 0 : Bias[o];
                    for (int t = 0; t < Tokens; t++)
                    {
                        float s = VecOps.Dot(X + (long)t * k, row, k);
                        float* dst = Y + (long)t * n + o;
                        *dst = Accumulate ? *dst + s : s + b;
                    }
                }
        }
    }
}
