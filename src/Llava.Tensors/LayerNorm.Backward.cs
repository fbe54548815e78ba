// Contract: LayerNorm forward-with-stats (mean, rstd per row) and backward (dX, dW, dB accumulated); SIMD, all workers, deterministic.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

/// <summary>
/// y = x̂·w + b with x̂ = (x − μ)·r, r = 1/sqrt(var + eps) (biased variance). Backward, per row with g = dY ⊙ w:
/// dX += r·(g − mean(g) − x̂·mean(g ⊙ x̂)); dW += Σ_rows dY ⊙ x̂; dB += Σ_rows dY.
/// Rows in parallel for dX, then column chunks in parallel for dW/dB (row order fixed): thread-count independent.
/// </summary>
public static unsafe partial class LayerNorm
{
    /// <summary>Forward that also writes mean[r] and rstd[r] (rows floats each), bit-identical to the forward's own values.</summary>
    public static void Forward(Span<float> y, Span<float> mean, Span<float> rstd, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias,
                               int rows, int cols, float eps)
    {
        if (mean.Length < rows || rstd.Length < rows || x.Length < (long)rows * cols) throw new ArgumentException("span shorter than rows / rows*cols");
        fixed (float* pm = mean) fixed (float* pr = rstd) fixed (float* px = x)
        {
            var job = new RmsNorm.StatsJob { X = px, Mean = pm, Rstd = pr, Cols = cols, Eps = eps };
            Workers.Run(ref job, rows, Math.Max(1, 16384 / Math.Max(1, cols)));
        }
        Forward(y, x, weight, bias, rows, cols, eps);   // after the stats: y may alias x
    }

    /// <summary>dX (rows, cols) +=, dW (cols) +=, dB (cols) += given the forward's mean and rstd. Empty gradient spans are skipped.</summary>
    public static void Backward(Span<float> dX, Span<float> dW, Span<float> dB, ReadOnlySpan<float> dY, ReadOnlySpan<float> x, ReadOnlySpan<float> weight,
                                ReadOnlySpan<float> mean, ReadOnlySpan<float> rstd, int rows, int cols)
    {
        long n = (long)rows * cols;
        if (dY.Length < n || x.Length < n || weight.Length < cols || mean.Length < rows || rstd.Length < rows) throw new ArgumentException("span shorter than its shape");
        if (!dX.IsEmpty && dX.Length < n) throw new ArgumentException("dX shorter than rows*cols", nameof(dX));
        if (!dW.IsEmpty && dW.Length < cols) throw new ArgumentException("dW shorter than cols", nameof(dW));
        if (!dB.IsEmpty && dB.Length < cols) throw new ArgumentException("dB shorter than cols", nameof(dB));
        if (rows == 0 || cols == 0) return;
        fixed (float* pdx = dX) fixed (float* pdw = dW) fixed (float* pdb = dB) fixed (float* pdy = dY) fixed (float* px = x) fixed (float* pw = weight)
        fixed (float* pm = mean) fixed (float* pr = rstd)
        {
            if (!dX.IsEmpty)
            {
                var job = new RowJob { DX = pdx, DY = pdy, X = px, W = pw, Mean = pm, Rstd = pr, Cols = cols };
                Workers.Run(ref job, rows, Math.Max(1, 8192 / cols));
            }
            if (!dW.IsEmpty)
            {
                var job = new RmsNorm.NormColumnJob { DW = pdw, DB = dB.IsEmpty ? null : pdb, DY = pdy, X = px, Mean = pm, Rstd = pr, Rows = rows, Cols = cols };
                Workers.Run(ref job, (cols + RmsNorm.NormColumnJob.Chunk - 1) / RmsNorm.NormColumnJob.Chunk, Math.Max(1, 16384 / Math.Max(1, rows * RmsNorm.NormColumnJob.Chunk)));
            }
            else if (!dB.IsEmpty)
            {
                var job = new MatMul.ColumnSumJob { Dst = pdb, Src = pdy, Rows = rows, Cols = cols };
                Workers.Run(ref job, (cols + MatMul.ColumnChunk - 1) / MatMul.ColumnChunk, Math.Max(1, 16384 / Math.Max(1, rows * MatMul.ColumnChunk)));
            }
        }
    }

    struct RowJob : IParallelJob
    {
        public float* DX, DY, X, W, Mean, Rstd; public int Cols;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            for (int r = start; r < end; r++)
            {
                float* dx = DX + (long)r * Cols, dy = DY + (long)r * Cols, x = X + (long)r * Cols;
                float m = Mean[r], rs = Rstd[r];
                // a = Σ g, b = Σ g·x̂ (x̂ recomputed from x, mean, rstd)
                float a = 0, b = 0;
                int i = 0;
                if (Simd.Width >= 512)
                {
                    Vector512<float> va = default, vb = default, vm = Vector512.Create(m), vr = Vector512.Create(rs);
                    for (; i + 16 <= Cols; i += 16)
                    {
                        var g = Vector512.Load(dy + i) * Vector512.Load(W + i);
                        va += g;
                        vb = Vector512.FusedMultiplyAdd(g, (Vector512.Load(x + i) - vm) * vr, vb);
                    }
                    a = Vector512.Sum(va); b = Vector512.Sum(vb);
                }
                else if (Simd.Width >= 256)
                {
                    Vector256<float> va = default, vb = default, vm = Vector256.Create(m), vr = Vector256.Create(rs);
                    for (; i + 8 <= Cols; i += 8)
                    {
                        var g = Vector256.Load(dy + i) * Vector256.Load(W + i);
                        va += g;
                        vb = Vector256.FusedMultiplyAdd(g, (Vector256.Load(x + i) - vm) * vr, vb);
                    }
                    a = Vector256.Sum(va); b = Vector256.Sum(vb);
                }
                for (; i < Cols; i++) { float g = dy[i] * W[i]; a += g; b = MathF.FusedMultiplyAdd(g, (x[i] - m) * rs, b); }
                a /= Cols; b /= Cols;
                // dx += rs·(g − a − x̂·b)
                i = 0;
                if (Simd.Width >= 512)
                {
                    Vector512<float> vm = Vector512.Create(m), vr = Vector512.Create(rs), va = Vector512.Create(a), vb = Vector512.Create(b);
                    for (; i + 16 <= Cols; i += 16)
                    {
                        var xh = (Vector512.Load(x + i) - vm) * vr;
                        var t = Vector512.FusedMultiplyAdd(-xh, vb, Vector512.Load(dy + i) * Vector512.Load(W + i) - va);
                        Vector512.Store(Vector512.FusedMultiplyAdd(vr, t, Vector512.Load(dx + i)), dx + i);
                    }
                }
                else if (Simd.Width >= 256)
                {
                    Vector256<float> vm = Vector256.Create(m), vr = Vector256.Create(rs), va = Vector256.Create(a), vb = Vector256.Create(b);
                    for (; i + 8 <= Cols; i += 8)
                    {
                        var xh = (Vector256.Load(x + i) - vm) * vr;
                        var t = Vector256.FusedMultiplyAdd(-xh, vb, Vector256.Load(dy + i) * Vector256.Load(W + i) - va);
                        Vector256.Store(Vector256.FusedMultiplyAdd(vr, t, Vector256.Load(dx + i)), dx + i);
                    }
                }
                for (; i < Cols; i++)
                {
                    float xh = (x[i] - m) * rs;
                    dx[i] = MathF.FusedMultiplyAdd(rs, MathF.FusedMultiplyAdd(-xh, b, dy[i] * W[i] - a), dx[i]);
                }
            }
        }
    }
}
