// Contract: LLaMA RMSNorm over rows: y = x · 1/sqrt(mean(x²) + eps) · w, f32, SIMD, rows split across workers.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

/// <summary>RMSNorm (HF LlamaRMSNorm in f32). y may alias x.</summary>
public static unsafe partial class RmsNorm
{
    public static void Forward(Span<float> y, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, int rows, int cols, float eps)
    {
        long n = (long)rows * cols;
        if (x.Length < n || y.Length < n || weight.Length < cols) throw new ArgumentException("span shorter than rows*cols / cols");
        fixed (float* py = y) fixed (float* px = x) fixed (float* pw = weight)
        {
            var job = new Job { Y = py, X = px, W = pw, Cols = cols, Eps = eps };
            // ~16K elements per thread before splitting pays for the hand-off.
            Workers.Run(ref job, rows, Math.Max(1, 16384 / Math.Max(1, cols)));
        }
    }

    struct Job : IParallelJob
    {
        public float* Y, X, W; public int Cols; public float Eps;
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            for (int r = start; r < end; r++)
            {
                float* x = X + (long)r * Cols, y = Y + (long)r * Cols;
                float ss = VecOps.SumSquaresCentered(x, Cols, 0f);
                // Same order as torch: (x · rsqrt(mean + eps)) · w.
                float inv = 1.0f / MathF.Sqrt(ss / Cols + Eps);
                int i = 0;
                if (Simd.Width >= 512)
                {
                    var vi = Vector512.Create(inv);
                    for (; i + 16 <= Cols; i += 16) Vector512.Store(Vector512.Load(x + i) * vi * Vector512.Load(W + i), y + i);
                }
                else if (Simd.Width >= 256)
                {
                    var vi = Vector256.Create(inv);
                    for (; i + 8 <= Cols; i += 8) Vector256.Store(Vector256.Load(x + i) * vi * Vector256.Load(W + i), y + i);
                }
                for (; i < Cols; i++) y[i] = x[i] * inv * W[i];
            }
        }
    }
}
