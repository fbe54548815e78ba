// Contract: linear-layer gradients, accumulated: dX += dY·W (f32, or a frozen F32/F16/BF16 or ggml block-quantized WeightMatrix:
// QLoRA bases, row blocks dequantized into per-thread scratch while packing), dW += dYᵀ·x, dB += Σ_t dY; packed GEMM on the
// forward micro-kernels, all workers, deterministic (no result depends on the split).
using Llava.Tensors.Quantization;
using System.Runtime.CompilerServices;

namespace Llava.Tensors;

/// <summary>
/// Backward of y = x·Wᵀ + b, x: (tokens, in), W: (out, in), y: (tokens, out). Every gradient is added (+=) into its
/// buffer; an empty span skips that gradient. The two products are "NN" GEMMs on the same register-blocked
/// micro-kernels as the forward (Kernel256x6/Kernel512x6): the B operand (W for dX, x for dW) is packed from
/// contiguous row segments into k-major panels, and for dW the A operand dYᵀ is packed (transposed) per block.
/// A work item owns a (row block x column block) tile of the output and loops over all of k, so each output element
/// is summed in one fixed order whatever the thread count.
/// </summary>
public static unsafe partial class MatMul
{
    const int BackwardRowBlock = TokenChunk;   // output rows per item (Mc): packed A tile Mc x Kc floats (L2)

    /// <summary>All gradients of an f32 linear layer. dX: (tokens, in), dW: (out, in), dB: (out); empty = skip.</summary>
    public static void Backward(Span<float> dX, Span<float> dW, Span<float> dB, ReadOnlySpan<float> dY, ReadOnlySpan<float> x,
                                ReadOnlySpan<float> w, int tokens, int outFeatures, int inFeatures)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(outFeatures);
        ArgumentOutOfRangeException.ThrowIfNegative(inFeatures);
        if (!dX.IsEmpty)
        {
            if (w.Length < (long)outFeatures * inFeatures) throw new ArgumentException("w shorter than out*in", nameof(w));
            fixed (float* pw = w) BackwardInput(dX, dY, new WeightMatrix(DType.F32, outFeatures, inFeatures, pw), tokens);
        }
        if (!dW.IsEmpty) BackwardWeight(dW, dY, x, tokens, outFeatures, inFeatures);
        if (!dB.IsEmpty) BackwardBias(dB, dY, tokens, outFeatures);
    }

    /// <summary>
    /// dX (tokens, W.Cols) += dY (tokens, W.Rows) · W. W may be F32, F16 or BF16 (frozen layers, LoRA bases) or block-quantized
    /// (QLoRA bases: Q8_0, Q4_0, Q4_K, …): each packed k-row segment is dequantized exactly as ggml does (whole blocks, into
    /// the worker's scratch), so the result is dY · dequantize(W) with no f32 copy of the matrix. Scalar twin:
    /// <see cref="BackwardReference.MatMul"/> (it reads any WeightMatrix element-wise).
    /// </summary>
    public static void BackwardInput(Span<float> dX, ReadOnlySpan<float> dY, WeightMatrix w, int tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        if (dY.Length < (long)tokens * w.Rows) throw new ArgumentException($"dY has {dY.Length} floats, need {tokens}x{w.Rows}", nameof(dY));
        if (dX.Length < (long)tokens * w.Cols) throw new ArgumentException($"dX has {dX.Length} floats, need {tokens}x{w.Cols}", nameof(dX));
        if (tokens == 0 || w.Cols == 0 || w.Rows == 0) return;
        fixed (float* pdx = dX) fixed (float* pdy = dY)
            AccumulateNN(pdx, w.Cols, tokens, w.Cols, w.Rows, pdy, w.Rows, transposeA: false, w.Data, w.DType, w.Cols,
                w.IsQuantized ? w.Format : GgmlType.F32, w.IsQuantized ? w.RowBytes : 0);
    }

    /// <summary>
    /// The training forward of a frozen (QLoRA) base: y (tokens, W.Rows) = x · dequantize(W)ᵀ (+ bias) with f32 activations, for any
    /// token count: exactly the packed f32 GEMM on W's ggml dequantization, i.e. the function whose input gradient
    /// <see cref="BackwardInput"/> computes. (Inference's <see cref="Forward"/> quantizes the activations to 8 bits for
    /// block-quantized W, llama.cpp's scheme, whose result differs by that rounding.) Non-quantized W: <see cref="Forward"/>.
    /// </summary>
    public static void ForwardDequantized(Span<float> y, ReadOnlySpan<float> x, WeightMatrix w, ReadOnlySpan<float> bias, int tokens)
    {
        if (!w.IsQuantized) { Forward(y, x, w, bias, tokens); return; }
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        if (x.Length < (long)tokens * w.Cols) throw new ArgumentException($"x has {x.Length} floats, need {tokens}x{w.Cols}", nameof(x));
        if (y.Length < (long)tokens * w.Rows) throw new ArgumentException($"y has {y.Length} floats, need {tokens}x{w.Rows}", nameof(y));
        if (!bias.IsEmpty && bias.Length < w.Rows) throw new ArgumentException("bias shorter than W.Rows", nameof(bias));
        if (tokens == 0 || w.Rows == 0) return;
        fixed (float* py = y) fixed (float* px = x) fixed (float* pb = bias)
            Gemm(py, px, DType.F32, w.Data, w.Rows, w.Cols, bias.IsEmpty ? null : pb, tokens, accumulate: false, quant: w.Format);
    }

    /// <summary>dW (out, in) += dYᵀ · x with dY: (tokens, out), x: (tokens, in).</summary>
    public static void BackwardWeight(Span<float> dW, ReadOnlySpan<float> dY, ReadOnlySpan<float> x, int tokens, int outFeatures, int inFeatures)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        ArgumentOutOfRangeException.ThrowIfNegative(outFeatures);
        ArgumentOutOfRangeException.ThrowIfNegative(inFeatures);
        if (dY.Length < (long)tokens * outFeatures || x.Length < (long)tokens * inFeatures || dW.Length < (long)outFeatures * inFeatures)
            throw new ArgumentException("span shorter than its shape");
        if (tokens == 0 || outFeatures == 0 || inFeatures == 0) return;
        fixed (float* pdw = dW) fixed (float* pdy = dY) fixed (float* px = x)
            AccumulateNN(pdw, inFeatures, outFeatures, inFeatures, tokens, pdy, outFeatures, transposeA: true, px, DType.F32, inFeatures);
    }

    /// <summary>dB (out) += Σ_t dY[t, :].</summary>
    public static void BackwardBias(Span<float> dB, ReadOnlySpan<float> dY, int tokens, int outFeatures)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        if (dY.Length < (long)tokens * outFeatures || dB.Length < outFeatures) throw new ArgumentException("span shorter than its shape");
        if (tokens == 0 || outFeatures == 0) return;
        fixed (float* pdb = dB) fixed (float* pdy = dY)
        {
            var job = new ColumnSumJob { Dst = pdb, Src = pdy, Rows = tokens, Cols = outFeatures };
            Workers.Run(ref job, (outFeatures + ColumnChunk - 1) / ColumnChunk, Math.Max(1, 16384 / Math.Max(1, tokens * ColumnChunk)));
        }
    }

    internal const int ColumnChunk = 256;

    /// <summary>dst[c] += Σ_r src[r, c], columns split into chunks; each column summed in row order.</summary>
    internal struct ColumnSumJob : IParallelJob
    {
        public float* Dst, Src; public int Rows, Cols;
        public void Execute(int start, int end)
        {
            int c0 = start * ColumnChunk, c1 = Math.Min(Cols, end * ColumnChunk);
            for (int r = 0; r < Rows; r++) VecOps.Axpy(Dst + c0, 1f, Src + (long)r * Cols + c0, c1 - c0);
        }
    }

    /// <summary>
    /// C (m x n, row stride ldc) += A · B where A is (m x k): a[i*lda + kk], or with <paramref name="transposeA"/>
    /// a[kk*lda + i]; B is (k x n): b[kk*ldb + j] stored as <paramref name="bType"/>, or, when <paramref name="bQuant"/> is a
    /// block type, row kk at b + kk·<paramref name="bRowBytes"/> in that format (n = its row length).
    /// </summary>
    static void AccumulateNN(float* c, int ldc, int m, int n, int k, float* a, int lda, bool transposeA, void* b, DType bType, int ldb,
                             GgmlType bQuant = GgmlType.F32, long bRowBytes = 0)
    {
        int width = Simd.Width;
        int nr = width == 512 ? 32 : 16;
        int nc = nr * PanelsPerBlock;
        int colBlocks = (n + nc - 1) / nc, rowBlocks = (m + BackwardRowBlock - 1) / BackwardRowBlock;
        var job = new AccJob
        {
            C = c, A = a, B = b, BType = bType, M = m, N = n, K = k, Lda = lda, Ldb = ldb, Ldc = ldc, TransposeA = transposeA,
            Nr = nr, Nc = nc, ColBlocks = colBlocks, Width = width,
            Quant = bQuant, RowBytes = bRowBytes, QuantBlock = bQuant == GgmlType.F32 ? 0 : GgmlTypeInfo.Layout(bQuant)!.Value.BlockSize,
        };
        // A full item is ≥ Mc·Nc·Kc·2 flops; split once there are two items unless the whole product is tiny.
        long flops = 2L * m * n * k;
        Workers.Run(ref job, rowBlocks * colBlocks, flops < 1 << 18 ? int.MaxValue : 1);
    }

    struct AccJob : IParallelJob
    {
        public float* C, A; public void* B; public DType BType;
        public int M, N, K, Lda, Ldb, Ldc, Nr, Nc, ColBlocks, Width; public bool TransposeA;
        public GgmlType Quant; public long RowBytes; public int QuantBlock;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            int kcMax = Math.Min(Kc, Math.Max(1, K));
            // A quantized row segment is dequantized in whole blocks: up to one block more on each side of the Nc columns.
            int rowLen = Nc + 2 * QuantBlock;
            float[] bBuf = Scratch.Get(0, Nc * kcMax + rowLen + Mr * Nr);
            float[] aBuf = Scratch.Get(1, TransposeA ? BackwardRowBlock * kcMax : 1);
            fixed (float* pb = bBuf) fixed (float* pa = aBuf)
            {
                float* packed = pb, row = pb + Nc * kcMax, tile = row + rowLen;
                for (int item = start; item < end; item++)
                {
                    int cb = item % ColBlocks, rb = item / ColBlocks;
                    int j0 = cb * Nc, cols = Math.Min(Nc, N - j0);
                    int i0 = rb * BackwardRowBlock, rows = Math.Min(BackwardRowBlock, M - i0);
                    int panels = (cols + Nr - 1) / Nr;
                    for (int k0 = 0; k0 < K; k0 += Kc)
                    {
                        int kc = Math.Min(Kc, K - k0);
                        PackB(packed, row, j0, cols, k0, kc);
                        float* aTile; int lda;
                        if (TransposeA) { PackATransposed(pa, i0, rows, k0, kc); aTile = pa; lda = kc; }
                        else { aTile = A + (long)i0 * Lda + k0; lda = Lda; }
                        int i = 0;
                        for (; i + Mr <= rows; i += Mr)
                            for (int p = 0; p < panels; p++)
                                Tile(Mr, aTile + (long)i * lda, lda, i0 + i, j0 + p * Nr, Math.Min(Nr, cols - p * Nr), packed + p * kc * Nr, kc, tile);
                        for (; i < rows; i++)
                            for (int p = 0; p < panels; p++)
                                Tile(1, aTile + (long)i * lda, lda, i0 + i, j0 + p * Nr, Math.Min(Nr, cols - p * Nr), packed + p * kc * Nr, kc, tile);
                    }
                }
            }
        }

        // B[k0 .. k0+kc, j0 .. j0+cols) → panels of Nr columns, k-major (panel[kk][r]); missing columns are 0.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void PackB(float* packed, float* row, int j0, int cols, int k0, int kc)
        {
            int panels = (cols + Nr - 1) / Nr;
            for (int kk = 0; kk < kc; kk++)
            {
                long offset = (long)(k0 + kk) * Ldb + j0;
                float* src;
                if (QuantBlock > 0)
                {
                    // Blocks covering [j0, j0 + cols) of row k0 + kk, dequantized as ggml does.
                    int b0 = j0 / QuantBlock * QuantBlock, b1 = Math.Min(N, (j0 + cols + QuantBlock - 1) / QuantBlock * QuantBlock);
                    DequantizeSlice(Quant, (byte*)B + (k0 + kk) * RowBytes, b0, b1 - b0, row);
                    src = row + (j0 - b0);
                }
                else switch (BType)
                {
                    case DType.F32: src = (float*)B + offset; break;
                    case DType.BF16: DTypeConvert.BF16ToF32(new ReadOnlySpan<ushort>((ushort*)B + offset, cols), new Span<float>(row, cols)); src = row; break;
                    default: DTypeConvert.F16ToF32(new ReadOnlySpan<Half>((Half*)B + offset, cols), new Span<float>(row, cols)); src = row; break;
                }
                for (int p = 0; p < panels; p++)
                {
                    float* dst = packed + p * kc * Nr + kk * Nr;
                    int n = Math.Min(Nr, cols - p * Nr);
                    new ReadOnlySpan<float>(src + p * Nr, n).CopyTo(new Span<float>(dst, n));
                    for (int r = n; r < Nr; r++) dst[r] = 0;
                }
            }
        }

        // aPacked[i*kc + kk] = A[(k0+kk)*Lda + i0 + i]: reads rows of the stored matrix contiguously.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void PackATransposed(float* aPacked, int i0, int rows, int k0, int kc)
        {
            for (int kk = 0; kk < kc; kk++)
            {
                float* src = A + (long)(k0 + kk) * Lda + i0;
                for (int i = 0; i < rows; i++) aPacked[i * kc + kk] = src[i];
            }
        }

        // C[row .. row+mr, col .. col+ncols) += a-tile (mr x kc, stride lda) · panel.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Tile(int mr, float* a, int lda, int row, int col, int ncols, float* panel, int kc, float* tile)
        {
            bool full = ncols == Nr;
            float* dst = full ? C + (long)row * Ldc + col : tile;
            int ldd = full ? Ldc : Nr;
            if (Width == 512)
            {
                if (mr == Mr) Kernel512x6(a, lda, panel, kc, dst, ldd, full, null);
                else Kernel512x1(a, panel, kc, dst, full, null);
            }
            else if (Width == 256)
            {
                if (mr == Mr) Kernel256x6(a, lda, panel, kc, dst, ldd, full, null);
                else Kernel256x1(a, panel, kc, dst, full, null);
            }
            else ScalarTile(mr, a, lda, panel, kc, dst, ldd, full);
            if (full) return;
            for (int i = 0; i < mr; i++)
            {
                float* cr = C + (long)(row + i) * Ldc + col;
                for (int j = 0; j < ncols; j++) cr[j] += tile[i * Nr + j];
            }
        }

        void ScalarTile(int mr, float* a, int lda, float* panel, int kc, float* d, int ldd, bool add)
        {
            for (int i = 0; i < mr; i++)
                for (int j = 0; j < Nr; j++)
                {
                    float s = 0;
                    for (int kk = 0; kk < kc; kk++) s = MathF.FusedMultiplyAdd(a[(long)i * lda + kk], panel[kk * Nr + j], s);
                    d[(long)i * ldd + j] = add ? d[(long)i * ldd + j] + s : s;
                }
        }
    }
}
