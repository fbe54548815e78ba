// Contract: helpers for backward tests: central finite differences of f64 forwards, and the accumulate-aware gradient comparison.
namespace Llava.Tensors.Tests.Backward;

internal static class GradCheck
{
    /// <summary>f32 test data widened exactly to f64.</summary>
    public static double[] D(float[] a) => Array.ConvertAll(a, v => (double)v);

    /// <summary>
    /// ∂f/∂p by central differences, perturbing <paramref name="p"/> in place (f reads it through its closure).
    /// Step 1e-5 on O(1) inputs: truncation error h²·|f'''|/6 ≈ 1e-10 and f64 cancellation ≈ 1e-16·|f|/h ≈ 1e-10, so the
    /// finite differences are accurate to ~1e-9 absolute, far below the f32 tolerances they are compared with.
    /// </summary>
    public static double[] Fd(double[] p, Func<double> f, double h = 1e-5)
    {
        var g = new double[p.Length];
        for (int i = 0; i < p.Length; i++)
        {
            double keep = p[i];
            p[i] = keep + h; double fp = f();
            p[i] = keep - h; double fm = f();
            p[i] = keep;
            g[i] = (fp - fm) / (2 * h);
        }
        return g;
    }

    /// <summary>
    /// Asserts actual ≈ init + grad elementwise (the kernels accumulate into a pre-filled buffer) with
    /// |err| ≤ rel·(max|grad| + |grad_i|) + 2u·|init_i + grad_i| (the final f32 rounding of the sum).
    /// </summary>
    public static void Accumulated(float[] init, float[] actual, double[] grad, double rel, string what)
    {
        Assert.Equal(grad.Length, actual.Length);
        double max = 0;
        foreach (double g in grad) max = Math.Max(max, Math.Abs(g));
        for (int i = 0; i < grad.Length; i++)
        {
            double expected = (init.Length == 0 ? 0 : init[i]) + grad[i];
            double tol = rel * (max + Math.Abs(grad[i])) + 1.2e-7 * Math.Abs(expected) + 1e-30;
            if (!(Math.Abs(actual[i] - expected) <= tol))
                Assert.Fail($"{what}[{i}]: expected {expected:R} (grad {grad[i]:R}), got {actual[i]:R}, |diff| {Math.Abs(actual[i] - expected):E3} > tol {tol:E3}");
        }
    }

    /// <summary>The gradient a kernel added: actual − init, in f64 (for comparing two kernels' contributions).</summary>
    public static double[] Added(float[] init, float[] actual)
    {
        var d = new double[actual.Length];
        for (int i = 0; i < d.Length; i++) d[i] = (double)actual[i] - (init.Length == 0 ? 0 : init[i]);
        return d;
    }

    public static float[] Clone(float[] a) => (float[])a.Clone();

    /// <summary><see cref="TestUtil.Close"/> with the failure message formatted only on failure (hot per-element loop).</summary>
    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, Func<int, double> tol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            if (float.IsNaN(e) || float.IsNaN(a)) { if (!(float.IsNaN(e) && float.IsNaN(a))) Assert.Fail($"{what}[{i}]: expected {e}, got {a}"); continue; }
            if (float.IsInfinity(e) || float.IsInfinity(a)) { if (e != a) Assert.Fail($"{what}[{i}]: expected {e}, got {a}"); continue; }
            double t = tol(i);
            if (!(Math.Abs((double)a - e) <= t)) Assert.Fail($"{what}[{i}]: expected {e:R}, got {a:R}, |diff| {Math.Abs((double)a - e):E3} > tol {t:E3}");
        }
    }

    /// <summary>Assert.True without formatting the message unless it fails (the checks run per element).</summary>
    public static void That(bool ok, Func<string> message)
    {
        if (!ok) Assert.Fail(message());
    }

    /// <summary>Runs <paramref name="body"/> with 1 and with 3 threads at the given width and asserts bit-identical outputs.</summary>
    public static void Deterministic(int width, Func<float[][]> body, string what)
    {
        float[][]? one = null, three = null;
        TestUtil.With(width, 1, () => one = body());
        TestUtil.With(width, 3, () => three = body());
        for (int a = 0; a < one!.Length; a++)
            for (int i = 0; i < one[a].Length; i++)
                if (BitConverter.SingleToInt32Bits(one[a][i]) != BitConverter.SingleToInt32Bits(three![a][i]))
                    Assert.Fail($"{what} output {a}[{i}]: {one[a][i]:R} vs {three[a][i]:R}");
    }
}
