// Contract: LayerNorm over rows with biased variance (as torch): y = (x - mean)/sqrt(var + eps) · w + b, f32, SIMD, multi-threaded.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

/// <summary>LayerNorm (torch.nn.LayerNorm semantics, two-pass mean/variance for accuracy). y may alias x.</summary>
public static unsafe partial class LayerNorm
{
    public static void Forward(Span<float> y, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, int rows, int cols, float eps)
    {
        long n = (long)rows * cols;
        if (x.Length < n || y.Length < n || weight.Length < cols || bias.Length < cols) throw new ArgumentException("span shorter than rows*cols / cols");
        fixed (float* py = y) fixed (float* px = x) fixed (float* pw = weight) fixed (float* pb = bias)
        {
            var job = new Job { Y = py, X = px, W = pw, B = pb, Cols = cols, Eps = eps };
            Workers.Run(ref job, rows, Math.Max(1, 16384 / Math.Max(1, cols)));
        }
    }

    struct Job : IParallelJob
    {
        public float* Y, X, W, B; public int Cols; public float Eps;
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            for (int r = start; r < end; r++)
            {
                float* x = X + (long)r * Cols, y = Y + (long)r * Cols;
                float mean = VecOps.Sum(x, Cols) / Cols;
                float var = VecOps.SumSquaresCentered(x, Cols, mean) / Cols;
                float inv = 1.0f / MathF.Sqrt(var + Eps);
                int i = 0;
                if (Simd.Width >= 512)
                {
                    Vector512<float> vm = Vector512.Create(mean), vi = Vector512.Create(inv);
                    for (; i + 16 <= Cols; i += 16)
                        Vector512.Store(Vector512.FusedMultiplyAdd((Vector512.Load(x + i) - vm) * vi, Vector512.Load(W + i), Vector512.Load(B + i)), y + i);
                }
                else if (Simd.Width >= 256)
                {
                    Vector256<float> vm = Vector256.Create(mean), vi = Vector256.Create(inv);
                    for (; i + 8 <= Cols; i += 8)
                        Vector256.Store(Vector256.FusedMultiplyAdd((Vector256.Load(x + i) - vm) * vi, Vector256.Load(W + i), Vector256.Load(B + i)), y + i);
                }
                for (; i < Cols; i++) y[i] = MathF.FusedMultiplyAdd((x[i] - mean) * inv, W[i], B[i]);
            }
        }
    }
}
