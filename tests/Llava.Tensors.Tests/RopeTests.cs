// Contract: Rope.Apply matches ReferenceKernels (rotate_half convention) for odd head dims / head counts on every width/thread count.
using Llava.Tensors;

namespace Llava.Tensors.Tests;

public class RopeTests
{
    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void MatchesReference(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            var rng = new Random(8);
            foreach (var (tokens, heads, headDim) in new[] { (1, 1, 2), (3, 2, 6), (5, 3, 16), (2, 8, 34), (7, 4, 64), (1, 32, 128), (33, 5, 70), (300, 8, 128) })
            {
                int half = headDim / 2;
                var x = TestUtil.Rand(rng, tokens * heads * headDim, 4f);
                var cos = new float[tokens * half];
                var sin = new float[tokens * half];
                for (int t = 0; t < tokens; t++)
                    for (int i = 0; i < half; i++)
                    {
                        double ang = (t + 3) * Math.Pow(10000, -2.0 * i / headDim);
                        cos[t * half + i] = (float)Math.Cos(ang); sin[t * half + i] = (float)Math.Sin(ang);
                    }
                var expected = (float[])x.Clone();
                ReferenceKernels.Rope(expected, cos, sin, tokens, heads, headDim);
                var actual = (float[])x.Clone();
                Rope.Apply(actual, cos, sin, tokens, heads, headDim);
                // a·c ∓ b·s in f32 (no FMA contraction guaranteed): ≤ ~2 ulp of |a·c| + |b·s|.
                TestUtil.Close(expected, actual, idx =>
                {
                    int d = idx % headDim, t = idx / (heads * headDim), i = d % half;
                    int b0 = idx - d;
                    double mag = Math.Abs(x[b0 + i] * cos[t * half + i]) + Math.Abs(x[b0 + i + half] * sin[t * half + i])
                               + Math.Abs(x[b0 + i] * sin[t * half + i]) + Math.Abs(x[b0 + i + half] * cos[t * half + i]);
                    return 1e-6 * mag + 1e-30;
                }, $"Rope {tokens}x{heads}x{headDim}");
            }
        });
    }
}
