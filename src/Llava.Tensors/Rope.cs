// Contract: rotary position embedding, HF LLaMA rotate_half convention (not interleaved), in place, SIMD, multi-threaded.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

/// <summary>
/// For token t, head h, i &lt; headDim/2: x1 = x[i], x2 = x[i+half];
/// x[i] = x1·cos[t,i] - x2·sin[t,i]; x[i+half] = x2·cos[t,i] + x1·sin[t,i].
/// x: (tokens, heads, headDim); cos/sin: (tokens, headDim/2).
/// </summary>
public static unsafe partial class Rope
{
    public static void Apply(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, int tokens, int heads, int headDim)
    {
        if ((headDim & 1) != 0) throw new ArgumentException("headDim must be even", nameof(headDim));
        int half = headDim / 2;
        if (x.Length < (long)tokens * heads * headDim || cos.Length < (long)tokens * half || sin.Length < (long)tokens * half)
            throw new ArgumentException("span shorter than its shape");
        fixed (float* px = x) fixed (float* pc = cos) fixed (float* ps = sin)
        {
            var job = new Job { X = px, Cos = pc, Sin = ps, Heads = heads, HeadDim = headDim, SinSign = 1f };
            Workers.Run(ref job, tokens * heads, Math.Max(1, 16384 / Math.Max(1, headDim)));
        }
    }

    struct Job : IParallelJob
    {
        public float* X, Cos, Sin; public int Heads, HeadDim;
        /// <summary>+1 rotates by θ (forward); −1 by −θ, the transpose, which is the backward.</summary>
        public float SinSign;
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
                        Vector512<float> x1 = Vector512.Load(a + i), x2 = Vector512.Load(b + i), vc = Vector512.Load(c + i), vs = Vector512.Load(s + i) * SinSign;
                        Vector512.Store(x1 * vc - x2 * vs, a + i);
                        Vector512.Store(x2 * vc + x1 * vs, b + i);
                    }
                if (Simd.Width >= 256)
                    for (; i + 8 <= half; i += 8)
                    {
                        Vector256<float> x1 = Vector256.Load(a + i), x2 = Vector256.Load(b + i), vc = Vector256.Load(c + i), vs = Vector256.Load(s + i) * SinSign;
                        Vector256.Store(x1 * vc - x2 * vs, a + i);
                        Vector256.Store(x2 * vc + x1 * vs, b + i);
                    }
                for (; i < half; i++)
                {
                    float x1 = a[i], x2 = b[i], si = s[i] * SinSign;
                    a[i] = x1 * c[i] - x2 * si;
                    b[i] = x2 * c[i] + x1 * si;
                }
            }
        }
    }
}
