// Contract: simple in-place f32 helpers (residual add, multiply, scale) with SIMD and all workers.
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

/// <summary>Residual and scaling helpers: outputs first, in place.</summary>
public static partial class Elementwise
{
    /// <summary>y += x (residual connection).</summary>
    public static void Add(Span<float> y, ReadOnlySpan<float> x) => ElementwiseJobs.Binary<AddOp>(y, x);

    /// <summary>y *= x elementwise.</summary>
    public static void Multiply(Span<float> y, ReadOnlySpan<float> x) => ElementwiseJobs.Binary<MulOp>(y, x);

    /// <summary>y *= s.</summary>
    public static void Scale(Span<float> y, float s) => System.Numerics.Tensors.TensorPrimitives.Multiply(y, s, y);

    struct AddOp : IBinaryOp
    {
        public static float Apply(float y, float x) => y + x;
        public static Vector256<float> Apply(Vector256<float> y, Vector256<float> x) => y + x;
        public static Vector512<float> Apply(Vector512<float> y, Vector512<float> x) => y + x;
    }

    struct MulOp : IBinaryOp
    {
        public static float Apply(float y, float x) => y * x;
        public static Vector256<float> Apply(Vector256<float> y, Vector256<float> x) => y * x;
        public static Vector512<float> Apply(Vector512<float> y, Vector512<float> x) => y * x;
    }
}
