// Contract: RoPE backward = rotation by −θ with the forward's cos/sin tables, in place on the gradient, SIMD, multi-threaded.

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
            var job = new Job { X = px, Cos = pc, Sin = ps, Heads = heads, HeadDim = headDim, SinSign = -1f };
            Workers.Run(ref job, tokens * heads, Math.Max(1, 16384 / Math.Max(1, headDim)));
        }
    }
}
