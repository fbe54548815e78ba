// Contract: RoPE backward = rotation by −θ with the forward's cos/sin tables, in place on the gradient, SIMD, multi-threaded.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

public static unsafe partial class Rope
{
    /// <summary>
    /// In place (not accumulated): turns dL/d(rotated x) into dL/dx. The forward is an orthogonal rotation per pair
    /// (x[i], x[i+half]), so the backward is its transpose: g[i] = g1·cos + g2·sin; g[i+half] = g2·cos − g1·sin.
    /// Same layout as <see cref="Apply"/>: g (tokens, heads, headDim), cos/sin (tokens, headDim/2).
    /// </summary>
    public static void Backward(Span<float> grad, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, int tokens, int heads, int headDim)
    {
        if ((headDim & 1) != 0) throw new ArgumentException("headDim must be even", nameof(headDim));
        int half = headDim / 2;
        if (grad.Length < (long)tokens * heads * headDim || cos.Length < (long)tokens * half || sin.Length < (long)tokens * half)
            throw new ArgumentException("span shorter than its shape");
        fixed (float* px = grad) fixed (float* pc = cos) fixed (float* ps = sin)
        {
            var job = new BackwardJob { X = px, Cos = pc, Sin = ps, Heads = heads, HeadDim = headDim };
            Workers.Run(ref job, tokens * heads, Math.Max(1, 16384 / Math.Max(1, headDim)));
        }
    }

    struct BackwardJob : IParallelJob
    {
        public float* X, Cos, Sin; public int Heads, HeadDim;
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            int half = HeadDim / 2;
            for (int item = start; item < end; item++)
            {
                int t = item / Heads;
                float* a = X + (long)item * HeadDim, b = a + half, c = Cos + (long)t * half, s = Sin + (long)t * half;
                int i = 0;
                if (Simd.Width >= 512)
                    for (; i + 16 <= half; i += 16)
                    {
                        Vector512<float> g1 = Vector512.Load(a + i), g2 = Vector512.Load(b + i), vc = Vector512.Load(c + i), vs = Vector512.Load(s + i);
                        Vector512.Store(g1 * vc + g2 * vs, a + i);
                        Vector512.Store(g2 * vc - g1 * vs, b + i);
                    }
                if (Simd.Width >= 256)
                    for (; i + 8 <= half; i += 8)
                    {
                        Vector256<float> g1 = Vector256.Load(a + i), g2 = Vector256.Load(b + i), vc = Vector256.Load(c + i), vs = Vector256.Load(s + i);
                        Vector256.Store(g1 * vc + g2 * vs, a + i);
                        Vector256.Store(g2 * vc - g1 * vs, b + i);
                    }
                for (; i < half; i++)
                {
                    float g1 = a[i], g2 = b[i];
                    a[i] = g1 * c[i] + g2 * s[i];
                    b[i] = g2 * c[i] - g1 * s[i];
                }
            }
        }
    }
}
