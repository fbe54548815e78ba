// Contract: vectorized transcendental helpers (exp, erf, sigmoid) for Vector512, Vector256 and scalar, with matching accuracy.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

/// <summary>
/// Float erf after Norbert Juffa's faithfully-rounded erff (max error ≈ 1 ulp; the same approximation MLX and
/// PyTorch's Metal backend use): an odd polynomial for |x| ≤ 0.9277 and 1 - exp(poly(|x|)) beyond.
/// The SIMD versions evaluate both branches and blend, so they are branch-free.
/// </summary>
internal static class SimdMath
{
    const float ErfSplit = 0.927734375f;
    const uint SignMask = 0x80000000u;

    public static float Erf(float a)
    {
        float t = MathF.Abs(a), s = a * a;
        if (t > ErfSplit)
        {
            float r = MathF.FusedMultiplyAdd(-1.72853470e-5f, t, 3.83197126e-4f);
            float u = MathF.FusedMultiplyAdd(-3.88396438e-3f, t, 2.42546219e-2f);
            r = MathF.FusedMultiplyAdd(r, s, u);
            r = MathF.FusedMultiplyAdd(r, t, -1.06777877e-1f);
            r = MathF.FusedMultiplyAdd(r, t, -6.34846687e-1f);
            r = MathF.FusedMultiplyAdd(r, t, -1.28717512e-1f);
            r = MathF.FusedMultiplyAdd(r, t, -t);
            return MathF.CopySign(1.0f - MathF.Exp(r), a);
        }
        float p = -5.96761703e-4f;
        p = MathF.FusedMultiplyAdd(p, s, 4.99119423e-3f);
        p = MathF.FusedMultiplyAdd(p, s, -2.67681349e-2f);
        p = MathF.FusedMultiplyAdd(p, s, 1.12819925e-1f);
        p = MathF.FusedMultiplyAdd(p, s, -3.76125336e-1f);
        p = MathF.FusedMultiplyAdd(p, s, 1.28379166e-1f);
        return MathF.FusedMultiplyAdd(p, a, a);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Erf(Vector512<float> a)
    {
        var t = Vector512.Abs(a); var s = a * a;
        var r = Vector512.FusedMultiplyAdd(Vector512.Create(-1.72853470e-5f), t, Vector512.Create(3.83197126e-4f));
        var u = Vector512.FusedMultiplyAdd(Vector512.Create(-3.88396438e-3f), t, Vector512.Create(2.42546219e-2f));
        r = Vector512.FusedMultiplyAdd(r, s, u);
        r = Vector512.FusedMultiplyAdd(r, t, Vector512.Create(-1.06777877e-1f));
        r = Vector512.FusedMultiplyAdd(r, t, Vector512.Create(-6.34846687e-1f));
        r = Vector512.FusedMultiplyAdd(r, t, Vector512.Create(-1.28717512e-1f));
        r = Vector512.FusedMultiplyAdd(r, t, -t);
        var big = Vector512<float>.One - Vector512.Exp(r);
        var sign = Vector512.Create(SignMask).AsSingle();
        big = (big & ~sign) | (a & sign);
        var p = Vector512.Create(-5.96761703e-4f);
        p = Vector512.FusedMultiplyAdd(p, s, Vector512.Create(4.99119423e-3f));
        p = Vector512.FusedMultiplyAdd(p, s, Vector512.Create(-2.67681349e-2f));
        p = Vector512.FusedMultiplyAdd(p, s, Vector512.Create(1.12819925e-1f));
        p = Vector512.FusedMultiplyAdd(p, s, Vector512.Create(-3.76125336e-1f));
        p = Vector512.FusedMultiplyAdd(p, s, Vector512.Create(1.28379166e-1f));
        p = Vector512.FusedMultiplyAdd(p, a, a);
        return Vector512.ConditionalSelect(Vector512.GreaterThan(t, Vector512.Create(ErfSplit)), big, p);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Erf(Vector256<float> a)
    {
        var t = Vector256.Abs(a); var s = a * a;
        var r = Vector256.FusedMultiplyAdd(Vector256.Create(-1.72853470e-5f), t, Vector256.Create(3.83197126e-4f));
        var u = Vector256.FusedMultiplyAdd(Vector256.Create(-3.88396438e-3f), t, Vector256.Create(2.42546219e-2f));
        r = Vector256.FusedMultiplyAdd(r, s, u);
        r = Vector256.FusedMultiplyAdd(r, t, Vector256.Create(-1.06777877e-1f));
        r = Vector256.FusedMultiplyAdd(r, t, Vector256.Create(-6.34846687e-1f));
        r = Vector256.FusedMultiplyAdd(r, t, Vector256.Create(-1.28717512e-1f));
        r = Vector256.FusedMultiplyAdd(r, t, -t);
        var big = Vector256<float>.One - Vector256.Exp(r);
        var sign = Vector256.Create(SignMask).AsSingle();
        big = (big & ~sign) | (a & sign);
        var p = Vector256.Create(-5.96761703e-4f);
        p = Vector256.FusedMultiplyAdd(p, s, Vector256.Create(4.99119423e-3f));
        p = Vector256.FusedMultiplyAdd(p, s, Vector256.Create(-2.67681349e-2f));
        p = Vector256.FusedMultiplyAdd(p, s, Vector256.Create(1.12819925e-1f));
        p = Vector256.FusedMultiplyAdd(p, s, Vector256.Create(-3.76125336e-1f));
        p = Vector256.FusedMultiplyAdd(p, s, Vector256.Create(1.28379166e-1f));
        p = Vector256.FusedMultiplyAdd(p, a, a);
        return Vector256.ConditionalSelect(Vector256.GreaterThan(t, Vector256.Create(ErfSplit)), big, p);
    }

    // x / (1 + exp(-z)): the form torch uses for sigmoid-based activations; saturates to 0 / x without overflow trouble.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float SigmoidMul(float x, float z) => x / (1.0f + MathF.Exp(-z));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> SigmoidMul(Vector512<float> x, Vector512<float> z) => x / (Vector512<float>.One + Vector512.Exp(-z));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> SigmoidMul(Vector256<float> x, Vector256<float> z) => x / (Vector256<float>.One + Vector256.Exp(-z));
}
