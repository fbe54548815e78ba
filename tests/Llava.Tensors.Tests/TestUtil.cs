// Contract: shared helpers for kernel tests: configurations (SIMD width x thread count), random data, weight storage, tolerant comparison.
using System.Runtime.CompilerServices;
using Llava.Tensors;

[assembly: CollectionBehavior(DisableTestParallelization = true)]   // tests switch global SIMD width / thread count

namespace Llava.Tensors.Tests;

internal static unsafe class TestUtil
{
    /// <summary>Every (SIMD width, thread count) pair the kernels are tested under. Vector512 runs emulated on AVX2-only machines.</summary>
    public static IEnumerable<object[]> Configs()
    {
        foreach (int width in new[] { 512, 256, 0 })
            foreach (int threads in new[] { 1, 3 })
                yield return [width, threads];
    }

    public static void With(int width, int threads, Action body)
    {
        int oldWidth = Simd.Width, oldThreads = Workers.ThreadCount;
        Simd.Width = width;
        Workers.SetThreadCount(threads);
        try { body(); }
        finally { Simd.Width = oldWidth; Workers.SetThreadCount(oldThreads); }
    }

    public static float[] Rand(Random rng, int n, float scale = 1f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>Stores f32 values as <paramref name="dtype"/> in pinned memory (rounded as torch would) and views them as a WeightMatrix.</summary>
    public static WeightMatrix Weights(DType dtype, int rows, int cols, float[] values)
    {
        int n = rows * cols;
        switch (dtype)
        {
            case DType.F32:
            {
                var a = GC.AllocateArray<float>(Math.Max(1, n), pinned: true);
                values.AsSpan(0, n).CopyTo(a);
                Keep.Add(a);
                return new WeightMatrix(dtype, rows, cols, Unsafe.AsPointer(ref a[0]));
            }
            default:
            {
                var a = GC.AllocateArray<ushort>(Math.Max(1, n), pinned: true);
                for (int i = 0; i < n; i++)
                    a[i] = dtype == DType.BF16 ? DTypeConvert.F32ToBF16(values[i]) : BitConverter.HalfToUInt16Bits((Half)values[i]);
                Keep.Add(a);
                return new WeightMatrix(dtype, rows, cols, Unsafe.AsPointer(ref a[0]));
            }
        }
    }

    // Pinned arrays stay reachable for the test process so WeightMatrix pointers remain valid.
    static readonly List<Array> Keep = [];

    /// <summary>Asserts |actual - expected| ≤ tol[i] elementwise; NaN must match NaN, infinities must match exactly.</summary>
    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, Func<int, double> tol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            if (float.IsNaN(e) || float.IsNaN(a)) { Assert.True(float.IsNaN(e) && float.IsNaN(a), $"{what}[{i}]: expected {e}, got {a}"); continue; }
            if (float.IsInfinity(e) || float.IsInfinity(a)) { Assert.True(e == a, $"{what}[{i}]: expected {e}, got {a}"); continue; }
            double t = tol(i);
            Assert.True(Math.Abs((double)a - e) <= t, $"{what}[{i}]: expected {e:R}, got {a:R}, |diff| {Math.Abs((double)a - e):E3} > tol {t:E3}");
        }
    }

    /// <summary>Distance in float ulps at the expected value.</summary>
    public static double Ulps(double expected, float actual)
    {
        float e = (float)expected;
        double ulp = Math.Max(MathF.BitIncrement(MathF.Abs(e)) - MathF.Abs(e), float.Epsilon);
        return Math.Abs(actual - expected) / ulp;
    }
}
