// Contract: internal pointer-based SIMD reductions and row primitives (dot, sum, sum of squares, max, axpy, scale) shared by kernels.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

/// <summary>Single-threaded vector primitives over raw pointers (callers pin). Each dispatches on <see cref="Simd.Width"/>.</summary>
internal static unsafe class VecOps
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float s = 0;
        if (Simd.Width >= 512)
        {
            // Two accumulators hide FMA latency; the order of summation differs from scalar by design.
            Vector512<float> s0 = default, s1 = default;
            for (; i + 32 <= n; i += 32)
            {
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), s0);
                s1 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 16), Vector512.Load(b + i + 16), s1);
            }
            for (; i + 16 <= n; i += 16) s0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), s0);
            s = Vector512.Sum(s0 + s1);
        }
        else if (Simd.Width >= 256)
        {
            Vector256<float> s0 = default, s1 = default;
            for (; i + 16 <= n; i += 16)
            {
                s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), s0);
                s1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), s1);
            }
            for (; i + 8 <= n; i += 8) s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), s0);
            s = Vector256.Sum(s0 + s1);
        }
        for (; i < n; i++) s = MathF.FusedMultiplyAdd(a[i], b[i], s);
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Sum(float* a, int n)
    {
        int i = 0;
        float s = 0;
        if (Simd.Width >= 512)
        {
            Vector512<float> acc = default;
            for (; i + 16 <= n; i += 16) acc += Vector512.Load(a + i);
            s = Vector512.Sum(acc);
        }
        else if (Simd.Width >= 256)
        {
            Vector256<float> acc = default;
            for (; i + 8 <= n; i += 8) acc += Vector256.Load(a + i);
            s = Vector256.Sum(acc);
        }
        for (; i < n; i++) s += a[i];
        return s;
    }

    /// <summary>Σ (a[i] - c)².</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float SumSquaresCentered(float* a, int n, float c)
    {
        int i = 0;
        float s = 0;
        if (Simd.Width >= 512)
        {
            Vector512<float> acc = default, vc = Vector512.Create(c);
            for (; i + 16 <= n; i += 16) { var d = Vector512.Load(a + i) - vc; acc = Vector512.FusedMultiplyAdd(d, d, acc); }
            s = Vector512.Sum(acc);
        }
        else if (Simd.Width >= 256)
        {
            Vector256<float> acc = default, vc = Vector256.Create(c);
            for (; i + 8 <= n; i += 8) { var d = Vector256.Load(a + i) - vc; acc = Vector256.FusedMultiplyAdd(d, d, acc); }
            s = Vector256.Sum(acc);
        }
        for (; i < n; i++) { float d = a[i] - c; s = MathF.FusedMultiplyAdd(d, d, s); }
        return s;
    }

    /// <summary>Max with NaN propagation (any NaN gives NaN); -inf for n == 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Max(float* a, int n)
    {
        int i = 0;
        float m = float.NegativeInfinity;
        if (Simd.Width >= 512 && n >= 16)
        {
            var acc = Vector512.Create(float.NegativeInfinity);
            for (; i + 16 <= n; i += 16) acc = Vector512.Max(acc, Vector512.Load(a + i));   // IEEE maximum: propagates NaN
            m = HMax(acc);
        }
        else if (Simd.Width >= 256 && n >= 8)
        {
            var acc = Vector256.Create(float.NegativeInfinity);
            for (; i + 8 <= n; i += 8) acc = Vector256.Max(acc, Vector256.Load(a + i));
            m = HMax(acc);
        }
        for (; i < n; i++) m = MathF.Max(m, a[i]);   // MathF.Max propagates NaN too
        return m;
    }

    static float HMax(Vector512<float> v) => MathF.Max(HMax(v.GetLower()), HMax(v.GetUpper()));
    static float HMax(Vector256<float> v)
    {
        float m = v[0];
        for (int j = 1; j < 8; j++) m = MathF.Max(m, v[j]);
        return m;
    }

    /// <summary>y += a · x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Axpy(float* y, float a, float* x, int n)
    {
        int i = 0;
        if (Simd.Width >= 512)
        {
            var va = Vector512.Create(a);
            for (; i + 16 <= n; i += 16) Vector512.Store(Vector512.FusedMultiplyAdd(va, Vector512.Load(x + i), Vector512.Load(y + i)), y + i);
        }
        else if (Simd.Width >= 256)
        {
            var va = Vector256.Create(a);
            for (; i + 8 <= n; i += 8) Vector256.Store(Vector256.FusedMultiplyAdd(va, Vector256.Load(x + i), Vector256.Load(y + i)), y + i);
        }
        for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(a, x[i], y[i]);
    }

    /// <summary>y *= a.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Scale(float* y, float a, int n)
    {
        int i = 0;
        if (Simd.Width >= 512)
        {
            var va = Vector512.Create(a);
            for (; i + 16 <= n; i += 16) Vector512.Store(Vector512.Load(y + i) * va, y + i);
        }
        else if (Simd.Width >= 256)
        {
            var va = Vector256.Create(a);
            for (; i + 8 <= n; i += 8) Vector256.Store(Vector256.Load(y + i) * va, y + i);
        }
        for (; i < n; i++) y[i] *= a;
    }
}
