// Contract: rotary embedding in ggml's "normal" (interleaved-pairs) layout, for weights converted by llama.cpp.
namespace Llava.Tensors;

public static unsafe partial class Rope
{
    /// <summary>
    /// ggml's LLaMA RoPE: rotates adjacent pairs (x[2i], x[2i+1]) by angle i. llama.cpp's converter permutes the rows
    /// of q_proj/k_proj so that this layout on its weights equals the rotate_half layout on Hugging Face's; attention
    /// scores are the same because q and k carry the same permutation.
    /// x: (tokens, heads, headDim); cos/sin: (tokens, headDim/2).
    /// </summary>
    public static void ApplyInterleaved(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, int tokens, int heads, int headDim)
    {
        if ((headDim & 1) != 0) throw new ArgumentException("headDim must be even", nameof(headDim));
        int half = headDim / 2;
        if (x.Length < (long)tokens * heads * headDim || cos.Length < (long)tokens * half || sin.Length < (long)tokens * half)
            throw new ArgumentException("span shorter than its shape");
        // Cheap next to the matmuls around it (tokens·heads·headDim multiply-adds): a plain loop is enough.
        for (int t = 0; t < tokens; t++)
        {
            var c = cos.Slice(t * half, half);
            var s = sin.Slice(t * half, half);
            for (int h = 0; h < heads; h++)
            {
                var row = x.Slice((t * heads + h) * headDim, headDim);
                for (int i = 0; i < half; i++)
                {
                    float x0 = row[2 * i], x1 = row[2 * i + 1];
                    row[2 * i] = x0 * c[i] - x1 * s[i];
                    row[2 * i + 1] = x0 * s[i] + x1 * c[i];
                }
            }
        }
    }
}
