// Contract: row-wise softmax backward from the saved output y: dX += y ⊙ (dY − Σ y·dY), f32, SIMD, rows across workers.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

public static unsafe partial class Softmax
{
    /// <summary>dX (rows, cols) += y ⊙ (dY − ⟨y, dY⟩_row), y = the forward's output. dX must not alias dY or y.</summary>
    public static void Backward(Span<float> dX, ReadOnlySpan<float> dY, ReadOnlySpan<float> y, int rows, int cols)
    {
        long n = (long)rows * cols;
        if (dX.Length < n || dY.Length < n || y.Length < n) throw new ArgumentException("span shorter than rows*cols");
        if (rows == 0 || cols == 0) return;
        fixed (float* pdx = dX) fixed (float* pdy = dY) fixed (float* py = y)
        {
            var job = new BackwardJob { DX = pdx, DY = pdy, Y = py, Cols = cols };
            Workers.Run(ref job, rows, Math.Max(1, 8192 / cols));
        }
    }

    /// <summary>One row: dx += y·(dy − ⟨y, dy⟩).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void BackwardRow(float* dx, float* dy, float* y, int n)
    {
        float s = VecOps.Dot(y, dy, n);
        int i = 0;
        if (Simd.Width >= 512)
        {
            var vs = Vector512.Create(s);
            for (; i + 16 <= n; i += 16)
                Vector512.Store(Vector512.FusedMultiplyAdd(Vector512.Load(y + i), Vector512.Load(dy + i) - vs, Vector512.Load(dx + i)), dx + i);
        }
        else if (Simd.Width >= 256)
        {
            var vs = Vector256.Create(s);
            for (; i + 8 <= n; i += 8)
                Vector256.Store(Vector256.FusedMultiplyAdd(Vector256.Load(y + i), Vector256.Load(dy + i) - vs, Vector256.Load(dx + i)), dx + i);
        }
        for (; i < n; i++) dx[i] = MathF.FusedMultiplyAdd(y[i], dy[i] - s, dx[i]);
    }

    struct BackwardJob : IParallelJob
    {
        public float* DX, DY, Y; public int Cols;
        public void Execute(int start, int end)
        {
            for (int r = start; r < end; r++) BackwardRow(DX + (long)r * Cols, DY + (long)r * Cols, Y + (long)r * Cols, Cols);
        }
    }
}
