using Llava.Tensors;

namespace Llava.Tensors.Tests;

/// <summary>ggml's interleaved RoPE on permuted rows equals HF's rotate_half RoPE on the original rows.</summary>
public sealed class RopeInterleavedTests
{
    [Theory]
    [InlineData(1, 1, 2)]
    [InlineData(3, 2, 8)]
    [InlineData(5, 4, 64)]
    public void InterleavedOnPermuted_EqualsRotateHalfOnOriginal(int tokens, int heads, int headDim)
    {
        var r = new Random(headDim * 31 + tokens);
        int half = headDim / 2;
        var x = Enumerable.Range(0, tokens * heads * headDim).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
        var cos = new float[tokens * half];
        var sin = new float[tokens * half];
        for (int t = 0; t < tokens; t++)
            for (int i = 0; i < half; i++)
            {
                double a = (t + 3) * Math.Pow(10000, -2.0 * i / headDim);
                cos[t * half + i] = (float)Math.Cos(a);
                sin[t * half + i] = (float)Math.Sin(a);
            }
        // llama.cpp's permutation within a head: HF index i → 2i, i + half → 2i + 1.
        float[] Permute(float[] v)
        {
            var p = new float[v.Length];
            for (int row = 0; row < tokens * heads; row++)
                for (int i = 0; i < half; i++)
                {
                    p[row * headDim + 2 * i] = v[row * headDim + i];
                    p[row * headDim + 2 * i + 1] = v[row * headDim + i + half];
                }
            return p;
        }
        var hf = x.ToArray();
        Rope.Apply(hf, cos, sin, tokens, heads, headDim);
        var gg = Permute(x);
        Rope.ApplyInterleaved(gg, cos, sin, tokens, heads, headDim);
        Assert.Equal(Permute(hf), gg);
    }

    [Fact]
    public void OddHeadDim_IsRejected() =>
        Assert.Throws<ArgumentException>(() => Rope.ApplyInterleaved(new float[3], new float[1], new float[1], 1, 1, 3));
}
