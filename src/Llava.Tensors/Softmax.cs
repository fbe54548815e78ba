// Contract: in-place row-wise softmax, max-subtracted, f32, SIMD, multi-threaded; all -inf row → NaN, NaN anywhere in a row → row NaN (as torch).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

/// <summary>
/// Row-wise softmax in place: exp(x - max) / Σ exp(x - max). Like torch: a row of all -inf yields NaN
/// (-inf - -inf = NaN), and a NaN anywhere in the row makes the whole row NaN. -inf entries (masks) become 0.
/// </summary>
public static unsafe partial class Softmax
{
    public static void Forward(Span<float> x, int rows, int cols)
    {
        if (x.Length < (long)rows * cols) throw new ArgumentException("span shorter than rows*cols");
        fixed (float* p = x)
        {
            var job = new Job { P = p, Cols = cols };
            Workers.Run(ref job, rows, Math.Max(1, 8192 / Math.Max(1, cols)));
        }
    }

    /// <summary>Softmax of one row in place (used by attention too).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Row(float* x, int n)
    {
        float max = VecOps.Max(x, n);
        int i = 0;
        float sum = 0;
        if (Simd.Width >= 512)
        {
            Vector512<float> vm = Vector512.Create(max), acc = default;
            for (; i + 16 <= n; i += 16) { var e = Vector512.Exp(Vector512.Load(x + i) - vm); e.Store(x + i); acc += e; }
            sum = Vector512.Sum(acc);
        }
        else if (Simd.Width >= 256)
        {
            Vector256<float> vm = Vector256.Create(max), acc = default;
            for (; i + 8 <= n; i += 8) { var e = Vector256.Exp(Vector256.Load(x + i) - vm); e.Store(x + i); acc += e; }
            sum = Vector256.Sum(acc);
        }
        for (; i < n; i++) { float e = MathF.Exp(x[i] - max); x[i] = e; sum += e; }
        VecOps.Scale(x, 1.0f / sum, n);
    }

    struct Job : IParallelJob
    {
        public float* P; public int Cols;
        public void Execute(int start, int end)
        {
            for (int r = start; r < end; r++) Row(P + (long)r * Cols, Cols);
        }
    }
}
