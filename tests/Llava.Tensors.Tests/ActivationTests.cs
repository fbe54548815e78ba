// Contract: activations match ReferenceKernels (double precision) on every width/thread count; float erf is within ~1 ulp over [-10, 10].
using Llava.Tensors;

namespace Llava.Tensors.Tests;

public class ActivationTests
{
    static float[] Inputs(int n, int seed, float range)
    {
        var x = TestUtil.Rand(new Random(seed), n, range);
        float[] specials = [0f, -0f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, 1e-30f, -1e-30f, 88f, -88f, 100f, -100f, 0.927734375f, -0.927734375f];
        for (int i = 0; i < Math.Min(n, specials.Length); i++) x[i * 3 % n] = specials[i];
        return x;
    }

    public static IEnumerable<object[]> Lengths() => new[] { 0, 1, 7, 8, 15, 16, 17, 31, 33, 70, 257, 1000, 70000 }.Select(n => new object[] { n });

    static void Run(Action<Span<float>> fast, Action<Span<float>> reference, Func<float, float, double> tol, string what, float range)
    {
        foreach (var cfg in TestUtil.Configs())
            TestUtil.With((int)cfg[0], (int)cfg[1], () =>
            {
                foreach (int n in new[] { 0, 1, 7, 8, 15, 16, 17, 31, 33, 70, 257, 1000, 70000 })
                {
                    var x = Inputs(n, n, range);
                    var expected = (float[])x.Clone();
                    reference(expected);
                    var actual = (float[])x.Clone();
                    fast(actual);
                    TestUtil.Close(expected, actual, i => tol(x[i], expected[i]), $"{what} n={n} width={cfg[0]}");
                }
            });
    }

    // f32 evaluation of x·(1 + erf(x/√2))/2 as torch does: erf's ~1-2 ulp (of values near 1) scaled by |x|/2, plus
    // the final products' rounding (~2 ulp of the result). For x ≲ -4 this is absolute error ~|x|·1e-7 by construction.
    [Fact]
    public void Gelu() => Run(Activations.Gelu, ReferenceKernels.Gelu, (x, e) => 1.5e-7 * Math.Abs(x) + 4e-7 * Math.Abs(e) + 1e-38, "Gelu", 12f);

    // x / (1 + exp(-z)): exp ≤ 2 ulp, one add, one divide → a few ulp of the result: 1e-6 relative. QuickGelu also
    // rounds z = 1.702·x to f32 first (as torch does), an absolute error u·|z| in the exponent, i.e. relative u·|z| in the result.
    [Fact]
    public void QuickGelu() => Run(Activations.QuickGelu, ReferenceKernels.QuickGelu, (x, e) => (1e-6 + 6e-8 * Math.Abs(1.702 * x)) * Math.Abs(e) + 1e-38, "QuickGelu", 20f);

    [Fact]
    public void Silu() => Run(Activations.Silu, ReferenceKernels.Silu, (x, e) => 1e-6 * Math.Abs(e) + 1e-38, "Silu", 20f);

    [Fact]
    public void SiluMul()
    {
        foreach (var cfg in TestUtil.Configs())
            TestUtil.With((int)cfg[0], (int)cfg[1], () =>
            {
                foreach (int n in new[] { 0, 1, 9, 16, 33, 70, 1000, 70000 })
                {
                    var gate = Inputs(n, n + 1, 20f);
                    var up = TestUtil.Rand(new Random(n), n, 3f);
                    var expected = (float[])gate.Clone();
                    ReferenceKernels.SiluMul(expected, up);
                    var actual = (float[])gate.Clone();
                    Activations.SiluMul(actual, up);
                    TestUtil.Close(expected, actual, i => 1e-6 * Math.Abs(expected[i]) + 1e-38, $"SiluMul n={n}");
                }
            });
    }

    [Fact]
    public void ErfWithinOneUlpOfDoubleReference()
    {
        // Dense grid over [-10, 10] plus random points, through the scalar, Vector256 and Vector512 paths.
        var xs = new List<float>();
        for (int i = -400000; i <= 400000; i++) xs.Add(i / 40000f);
        var rng = new Random(9);
        for (int i = 0; i < 200000; i++) xs.Add((float)(rng.NextDouble() * 20 - 10));
        for (int i = 0; i < 2000; i++) xs.Add((float)Math.Pow(10, -rng.NextDouble() * 30) * (i % 2 == 0 ? 1 : -1));
        var input = xs.ToArray();
        foreach (int width in new[] { 512, 256, 0 })
            TestUtil.With(width, 1, () =>
            {
                var y = (float[])input.Clone();
                Activations.Erf(y);
                double worst = 0; float worstX = 0;
                for (int i = 0; i < input.Length; i++)
                {
                    double u = TestUtil.Ulps(ReferenceKernels.Erf(input[i]), y[i]);
                    if (u > worst) { worst = u; worstX = input[i]; }
                }
                // Juffa's erff is faithfully rounded (< 1 ulp) with a correctly rounded exp; .NET's vector exp adds up to ~1 ulp of a
                // term ≤ 0.4 that is subtracted from 1, i.e. ≤ ~0.5 ulp more. 1.5 ulp bounds both.
                Assert.True(worst <= 1.5, $"width {width}: max erf error {worst:F3} ulp at x={worstX:R}");
                Assert.True(float.IsNaN(SimdMathProbe(float.NaN)));
            });
        Assert.Equal(1f, Activations.Erf(float.PositiveInfinity));
        Assert.Equal(-1f, Activations.Erf(float.NegativeInfinity));
    }

    static float SimdMathProbe(float x) => Activations.Erf(x);

    [Fact]
    public void ReferenceErfAgreesWithKnownValues()
    {
        // Guards the double reference itself (values from high-precision tables). 14 decimals = ~1e-14, i.e. 1e6 times
        // finer than the float ulps it is used to measure.
        Assert.Equal(0.8427007929497149, ReferenceKernels.Erf(1), 14);
        Assert.Equal(0.9953222650189527, ReferenceKernels.Erf(2), 14);
        Assert.Equal(0.9999779095030014, ReferenceKernels.Erf(3), 14);
        Assert.Equal(-0.5204998778130465, ReferenceKernels.Erf(-0.5), 14);
        Assert.Equal(0.99999999999999999, ReferenceKernels.Erf(6), 14);
        Assert.Equal(0.1124629160182849, ReferenceKernels.Erf(0.1), 14);
    }
}
