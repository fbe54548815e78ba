// Contract: RMSNorm backward (dX, dW accumulated) from x, w and the per-row rstd (saved by the stats overload or recomputed); SIMD, all workers, deterministic.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

/// <summary>
/// y = x·r·w with r = 1/sqrt(mean(x²) + eps) per row. Backward, per row with g = dY ⊙ w:
/// dX += r·g − (r³/n)·(Σ_j g_j x_j)·x, and dW += Σ_rows dY ⊙ x·r.
/// Two passes: rows in parallel for dX, then column chunks in parallel for dW (each column summed in row order),
/// so no two threads write the same float and results do not depend on the thread count.
/// </summary>
public static unsafe partial class RmsNorm
{
    /// <summary>Forward that also writes rstd[r] = 1/sqrt(mean(x²)+eps) (rows floats), bit-identical to the plain forward's.</summary>
    public static void Forward(Span<float> y, Span<float> rstd, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, int rows, int cols, float eps)
    {
        if (rstd.Length < rows || x.Length < (long)rows * cols) throw new ArgumentException("span shorter than rows / rows*cols");
        fixed (float* pr = rstd) fixed (float* px = x)
        {
            var job = new StatsJob { X = px, Mean = null, Rstd = pr, Cols = cols, Eps = eps };
            Workers.Run(ref job, rows, Math.Max(1, 16384 / Math.Max(1, cols)));
        }
        Forward(y, x, weight, rows, cols, eps);   // after the stats: y may alias x
    }

    /// <summary>Backward recomputing rstd from x (one extra read of x).</summary>
    public static void Backward(Span<float> dX, Span<float> dW, ReadOnlySpan<float> dY, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, int rows, int cols, float eps)
    {
        if (x.Length < (long)rows * cols) throw new ArgumentException("x shorter than rows*cols", nameof(x));
        float[] buf = Scratch.Get(3, Math.Max(1, rows));
        fixed (float* pr = buf) fixed (float* px = x)
        {
            var job = new StatsJob { X = px, Mean = null, Rstd = pr, Cols = cols, Eps = eps };
            Workers.Run(ref job, rows, Math.Max(1, 16384 / Math.Max(1, cols)));
        }
        Backward(dX, dW, dY, x, weight, buf.AsSpan(0, rows), rows, cols);
    }

    /// <summary>dX (rows, cols) += ∂/∂x, dW (cols) += ∂/∂w given the forward's rstd (rows). Empty dX or dW = skip.</summary>
    public static void Backward(Span<float> dX, Span<float> dW, ReadOnlySpan<float> dY, ReadOnlySpan<float> x, ReadOnlySpan<float> weight,
                                ReadOnlySpan<float> rstd, int rows, int cols)
    {
        long n = (long)rows * cols;
        if (dY.Length < n || x.Length < n || weight.Length < cols || rstd.Length < rows) throw new ArgumentException("span shorter than its shape");
        if (!dX.IsEmpty && dX.Length < n) throw new ArgumentException("dX shorter than rows*cols", nameof(dX));
        if (!dW.IsEmpty && dW.Length < cols) throw new ArgumentException("dW shorter than cols", nameof(dW));
        if (rows == 0 || cols == 0) return;
        fixed (float* pdx = dX) fixed (float* pdw = dW) fixed (float* pdy = dY) fixed (float* px = x) fixed (float* pw = weight) fixed (float* pr = rstd)
        {
            if (!dX.IsEmpty)
            {
                var job = new RowJob { DX = pdx, DY = pdy, X = px, W = pw, Rstd = pr, Cols = cols };
                Workers.Run(ref job, rows, Math.Max(1, 8192 / cols));
            }
            if (!dW.IsEmpty)
            {
                var job = new NormColumnJob { DW = pdw, DB = null, DY = pdy, X = px, Mean = null, Rstd = pr, Rows = rows, Cols = cols };
                Workers.Run(ref job, (cols + NormColumnJob.Chunk - 1) / NormColumnJob.Chunk, Math.Max(1, 16384 / Math.Max(1, rows * NormColumnJob.Chunk)));
            }
        }
    }

    struct RowJob : IParallelJob
    {
        public float* DX, DY, X, W, Rstd; public int Cols;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            for (int r = start; r < end; r++)
            {
                float* dx = DX + (long)r * Cols, dy = DY + (long)r * Cols, x = X + (long)r * Cols;
                float rs = Rstd[r];
                float s = Dot3(dy, W, x, Cols);
                float c = rs * rs * rs * s / Cols;
                // dx += rs·(dy·w) − c·x
                int i = 0;
                if (Simd.Width >= 512)
                {
                    Vector512<float> vr = Vector512.Create(rs), vc = Vector512.Create(-c);
                    for (; i + 16 <= Cols; i += 16)
                    {
                        var t = Vector512.FusedMultiplyAdd(vr * Vector512.Load(dy + i), Vector512.Load(W + i), Vector512.Load(dx + i));
                        Vector512.Store(Vector512.FusedMultiplyAdd(vc, Vector512.Load(x + i), t), dx + i);
                    }
                }
                else if (Simd.Width >= 256)
                {
                    Vector256<float> vr = Vector256.Create(rs), vc = Vector256.Create(-c);
                    for (; i + 8 <= Cols; i += 8)
                    {
                        var t = Vector256.FusedMultiplyAdd(vr * Vector256.Load(dy + i), Vector256.Load(W + i), Vector256.Load(dx + i));
                        Vector256.Store(Vector256.FusedMultiplyAdd(vc, Vector256.Load(x + i), t), dx + i);
                    }
                }
                for (; i < Cols; i++) dx[i] = MathF.FusedMultiplyAdd(-c, x[i], MathF.FusedMultiplyAdd(rs * dy[i], W[i], dx[i]));
            }
        }
    }

    /// <summary>Σ a[i]·b[i]·c[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float Dot3(float* a, float* b, float* c, int n)
    {
        int i = 0;
        float s = 0;
        if (Simd.Width >= 512)
        {
            Vector512<float> acc = default;
            for (; i + 16 <= n; i += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(a + i) * Vector512.Load(b + i), Vector512.Load(c + i), acc);
            s = Vector512.Sum(acc);
        }
        else if (Simd.Width >= 256)
        {
            Vector256<float> acc = default;
            for (; i + 8 <= n; i += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(a + i) * Vector256.Load(b + i), Vector256.Load(c + i), acc);
            s = Vector256.Sum(acc);
        }
        for (; i < n; i++) s = MathF.FusedMultiplyAdd(a[i] * b[i], c[i], s);
        return s;
    }

    /// <summary>Per-row mean (when Mean != null, two-pass as LayerNorm's forward) and rstd, with the forward kernels' exact arithmetic.</summary>
    internal struct StatsJob : IParallelJob
    {
        public float* X, Mean, Rstd; public int Cols; public float Eps;
        public void Execute(int start, int end)
        {
            for (int r = start; r < end; r++)
            {
                float* x = X + (long)r * Cols;
                if (Mean == null)
                {
                    float ss = VecOps.SumSquaresCentered(x, Cols, 0f);
                    Rstd[r] = 1.0f / MathF.Sqrt(ss / Cols + Eps);
                }
                else
                {
                    float mean = VecOps.Sum(x, Cols) / Cols;
                    float var = VecOps.SumSquaresCentered(x, Cols, mean) / Cols;
                    Mean[r] = mean;
                    Rstd[r] = 1.0f / MathF.Sqrt(var + Eps);
                }
            }
        }
    }

    /// <summary>Column pass shared by the norms: dW[c] += Σ_r dY[r,c]·(x[r,c] − mean[r])·rstd[r] (mean 0 when null),
    /// dB[c] += Σ_r dY[r,c] (when DB != null). Items are column chunks; rows are summed in order.</summary>
    internal struct NormColumnJob : IParallelJob
    {
        public const int Chunk = 64;
        public float* DW, DB, DY, X, Mean, Rstd; public int Rows, Cols;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            int c0 = start * Chunk, c1 = Math.Min(Cols, end * Chunk);
            for (int r = 0; r < Rows; r++)
            {
                float* dy = DY + (long)r * Cols, x = X + (long)r * Cols;
                float m = Mean == null ? 0f : Mean[r], rs = Rstd[r];
                int i = c0;
                if (Simd.Width >= 512)
                {
                    Vector512<float> vm = Vector512.Create(m), vr = Vector512.Create(rs);
                    for (; i + 16 <= c1; i += 16)
                    {
                        var d = Vector512.Load(dy + i);
                        Vector512.Store(Vector512.FusedMultiplyAdd(d, (Vector512.Load(x + i) - vm) * vr, Vector512.Load(DW + i)), DW + i);
                        if (DB != null) Vector512.Store(Vector512.Load(DB + i) + d, DB + i);
                    }
                }
                else if (Simd.Width >= 256)
                {
                    Vector256<float> vm = Vector256.Create(m), vr = Vector256.Create(rs);
                    for (; i + 8 <= c1; i += 8)
                    {
                        var d = Vector256.Load(dy + i);
                        Vector256.Store(Vector256.FusedMultiplyAdd(d, (Vector256.Load(x + i) - vm) * vr, Vector256.Load(DW + i)), DW + i);
                        if (DB != null) Vector256.Store(Vector256.Load(DB + i) + d, DB + i);
                    }
                }
                for (; i < c1; i++)
                {
                    DW[i] = MathF.FusedMultiplyAdd(dy[i], (x[i] - m) * rs, DW[i]);
                    if (DB != null) DB[i] += dy[i];
                }
            }
        }
    }
}
