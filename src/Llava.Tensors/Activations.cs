// Contract: in-place f32 activations (exact-erf GELU, quick GELU, SiLU, SiLU·up), SIMD and multi-threaded.
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

/// <summary>Elementwise activations, in place. Formulas follow torch's f32 kernels (see each op).</summary>
public static partial class Activations
{
    /// <summary>Exact GELU: 0.5 x (1 + erf(x/√2)), computed in f32 as torch does (so for x ≲ -4 the absolute error is ~|x|·ulp(1)).</summary>
    public static void Gelu(Span<float> x) => ElementwiseJobs.Unary<GeluOp>(x);

    /// <summary>CLIP's quick_gelu: x · sigmoid(1.702 x).</summary>
    public static void QuickGelu(Span<float> x) => ElementwiseJobs.Unary<QuickGeluOp>(x);

    /// <summary>SiLU: x · sigmoid(x), evaluated as x / (1 + exp(-x)).</summary>
    public static void Silu(Span<float> x) => ElementwiseJobs.Unary<SiluOp>(x);

    /// <summary>gate = silu(gate) · up (LLaMA MLP).</summary>
    public static void SiluMul(Span<float> gate, ReadOnlySpan<float> up) => ElementwiseJobs.Binary<SiluMulOp>(gate, up);

    /// <summary>Float erf (≈1 ulp), exposed for tests and other kernels.</summary>
    public static float Erf(float x) => SimdMath.Erf(x);

    /// <summary>Vectorized erf over a span, in place.</summary>
    public static void Erf(Span<float> x) => ElementwiseJobs.Unary<ErfOp>(x);

    const float InvSqrt2 = 0.70710678118654752f;

    struct ErfOp : IUnaryOp
    {
        public static float Apply(float x) => SimdMath.Erf(x);
        public static Vector256<float> Apply(Vector256<float> x) => SimdMath.Erf(x);
        public static Vector512<float> Apply(Vector512<float> x) => SimdMath.Erf(x);
    }

    struct GeluOp : IUnaryOp
    {
        public static float Apply(float x) => 0.5f * x * (1.0f + SimdMath.Erf(x * InvSqrt2));
        public static Vector256<float> Apply(Vector256<float> x)
            => Vector256.Create(0.5f) * x * (Vector256<float>.One + SimdMath.Erf(x * Vector256.Create(InvSqrt2)));
        public static Vector512<float> Apply(Vector512<float> x)
            => Vector512.Create(0.5f) * x * (Vector512<float>.One + SimdMath.Erf(x * Vector512.Create(InvSqrt2)));
    }

    struct QuickGeluOp : IUnaryOp
    {
        public static float Apply(float x) => SimdMath.SigmoidMul(x, 1.702f * x);
        public static Vector256<float> Apply(Vector256<float> x) => SimdMath.SigmoidMul(x, Vector256.Create(1.702f) * x);
        public static Vector512<float> Apply(Vector512<float> x) => SimdMath.SigmoidMul(x, Vector512.Create(1.702f) * x);
    }

    struct SiluOp : IUnaryOp
    {
        public static float Apply(float x) => SimdMath.SigmoidMul(x, x);
        public static Vector256<float> Apply(Vector256<float> x) => SimdMath.SigmoidMul(x, x);
        public static Vector512<float> Apply(Vector512<float> x) => SimdMath.SigmoidMul(x, x);
    }

    struct SiluMulOp : IBinaryOp
    {
        public static float Apply(float g, float u) => SimdMath.SigmoidMul(g, g) * u;
        public static Vector256<float> Apply(Vector256<float> g, Vector256<float> u) => SimdMath.SigmoidMul(g, g) * u;
        public static Vector512<float> Apply(Vector512<float> g, Vector512<float> u) => SimdMath.SigmoidMul(g, g) * u;
    }
}
