// Contract: activation derivatives from the saved forward inputs, accumulated (dX += dY·f'(x)); exact-erf GELU, quick GELU, SiLU, SiLU·up; SIMD, all workers.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

public static unsafe partial class Activations
{
    /// <summary>dX += dY · gelu'(x), gelu'(x) = Φ(x) + x·φ(x) = 0.5(1 + erf(x/√2)) + x·exp(−x²/2)/√(2π).</summary>
    public static void GeluBackward(Span<float> dX, ReadOnlySpan<float> dY, ReadOnlySpan<float> x) => GradJob<GeluGrad>.Run(dX, dY, x);

    /// <summary>dX += dY · (s + 1.702·x·s·(1 − s)), s = sigmoid(1.702 x).</summary>
    public static void QuickGeluBackward(Span<float> dX, ReadOnlySpan<float> dY, ReadOnlySpan<float> x) => GradJob<QuickGeluGrad>.Run(dX, dY, x);

    /// <summary>dX += dY · s·(1 + x·(1 − s)), s = sigmoid(x).</summary>
    public static void SiluBackward(Span<float> dX, ReadOnlySpan<float> dY, ReadOnlySpan<float> x) => GradJob<SiluGrad>.Run(dX, dY, x);

    /// <summary>For out = silu(gate)·up: dGate += dY·up·silu'(gate), dUp += dY·silu(gate). Either gradient may be empty (skipped).</summary>
    public static void SiluMulBackward(Span<float> dGate, Span<float> dUp, ReadOnlySpan<float> dY, ReadOnlySpan<float> gate, ReadOnlySpan<float> up)
    {
        int n = dY.Length;
        if (gate.Length != n || up.Length != n || (!dGate.IsEmpty && dGate.Length != n) || (!dUp.IsEmpty && dUp.Length != n))
            throw new ArgumentException("length mismatch");
        if (n == 0) return;
        fixed (float* pdg = dGate) fixed (float* pdu = dUp) fixed (float* pdy = dY) fixed (float* pg = gate) fixed (float* pu = up)
        {
            var job = new SiluMulGradJob { DG = dGate.IsEmpty ? null : pdg, DU = dUp.IsEmpty ? null : pdu, DY = pdy, G = pg, U = pu, N = n };
            Workers.Run(ref job, (n + GradBlock - 1) / GradBlock, 2);
        }
    }

    const int GradBlock = 16384;
    const float InvSqrt2Pi = 0.398942280401432678f;
    const float QuickGeluAlpha = 1.702f;

    interface IGradOp
    {
        static abstract float Apply(float x);
        static abstract Vector256<float> Apply(Vector256<float> x);
        static abstract Vector512<float> Apply(Vector512<float> x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] static float Sigmoid(float z) => 1.0f / (1.0f + MathF.Exp(-z));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] static Vector256<float> Sigmoid(Vector256<float> z) => Vector256<float>.One / (Vector256<float>.One + Vector256.Exp(-z));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] static Vector512<float> Sigmoid(Vector512<float> z) => Vector512<float>.One / (Vector512<float>.One + Vector512.Exp(-z));

    struct GeluGrad : IGradOp
    {
        public static float Apply(float x)
            => MathF.FusedMultiplyAdd(x * InvSqrt2Pi, MathF.Exp(-0.5f * x * x), 0.5f * (1.0f + SimdMath.Erf(x * InvSqrt2)));
        public static Vector256<float> Apply(Vector256<float> x)
            => Vector256.FusedMultiplyAdd(x * Vector256.Create(InvSqrt2Pi), Vector256.Exp(Vector256.Create(-0.5f) * x * x),
                                          Vector256.Create(0.5f) * (Vector256<float>.One + SimdMath.Erf(x * Vector256.Create(InvSqrt2))));
        public static Vector512<float> Apply(Vector512<float> x)
            => Vector512.FusedMultiplyAdd(x * Vector512.Create(InvSqrt2Pi), Vector512.Exp(Vector512.Create(-0.5f) * x * x),
                                          Vector512.Create(0.5f) * (Vector512<float>.One + SimdMath.Erf(x * Vector512.Create(InvSqrt2))));
    }

    struct QuickGeluGrad : IGradOp
    {
        public static float Apply(float x) { float z = QuickGeluAlpha * x, s = Sigmoid(z); return MathF.FusedMultiplyAdd(z * s, 1.0f - s, s); }
        public static Vector256<float> Apply(Vector256<float> x)
        { var z = Vector256.Create(QuickGeluAlpha) * x; var s = Sigmoid(z); return Vector256.FusedMultiplyAdd(z * s, Vector256<float>.One - s, s); }
        public static Vector512<float> Apply(Vector512<float> x)
        { var z = Vector512.Create(QuickGeluAlpha) * x; var s = Sigmoid(z); return Vector512.FusedMultiplyAdd(z * s, Vector512<float>.One - s, s); }
    }

    struct SiluGrad : IGradOp
    {
        public static float Apply(float x) { float s = Sigmoid(x); return MathF.FusedMultiplyAdd(x * s, 1.0f - s, s); }
        public static Vector256<float> Apply(Vector256<float> x) { var s = Sigmoid(x); return Vector256.FusedMultiplyAdd(x * s, Vector256<float>.One - s, s); }
        public static Vector512<float> Apply(Vector512<float> x) { var s = Sigmoid(x); return Vector512.FusedMultiplyAdd(x * s, Vector512<float>.One - s, s); }
    }

    struct GradJob<TOp> : IParallelJob where TOp : struct, IGradOp
    {
        public float* DX, DY, X; public int N;

        public static void Run(Span<float> dX, ReadOnlySpan<float> dY, ReadOnlySpan<float> x)
        {
            if (dY.Length != dX.Length || x.Length != dX.Length) throw new ArgumentException($"length mismatch: {dX.Length}, {dY.Length}, {x.Length}");
            if (dX.IsEmpty) return;
            fixed (float* pdx = dX) fixed (float* pdy = dY) fixed (float* px = x)
            {
                var job = new GradJob<TOp> { DX = pdx, DY = pdy, X = px, N = dX.Length };
                Workers.Run(ref job, (dX.Length + GradBlock - 1) / GradBlock, 2);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            int i = start * GradBlock, n = Math.Min(N, end * GradBlock);
            if (Simd.Width >= 512)
                for (; i + 16 <= n; i += 16)
                    Vector512.Store(Vector512.FusedMultiplyAdd(Vector512.Load(DY + i), TOp.Apply(Vector512.Load(X + i)), Vector512.Load(DX + i)), DX + i);
            if (Simd.Width >= 256)
                for (; i + 8 <= n; i += 8)
                    Vector256.Store(Vector256.FusedMultiplyAdd(Vector256.Load(DY + i), TOp.Apply(Vector256.Load(X + i)), Vector256.Load(DX + i)), DX + i);
            for (; i < n; i++) DX[i] = MathF.FusedMultiplyAdd(DY[i], TOp.Apply(X[i]), DX[i]);
        }
    }

    struct SiluMulGradJob : IParallelJob
    {
        public float* DG, DU, DY, G, U; public int N;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            int i = start * GradBlock, n = Math.Min(N, end * GradBlock);
            if (Simd.Width >= 512)
                for (; i + 16 <= n; i += 16)
                {
                    Vector512<float> g = Vector512.Load(G + i), dy = Vector512.Load(DY + i), s = Sigmoid(g);
                    if (DG != null)
                    {
                        var d = Vector512.FusedMultiplyAdd(g * s, Vector512<float>.One - s, s);
                        Vector512.Store(Vector512.FusedMultiplyAdd(dy * Vector512.Load(U + i), d, Vector512.Load(DG + i)), DG + i);
                    }
                    if (DU != null) Vector512.Store(Vector512.FusedMultiplyAdd(dy, g * s, Vector512.Load(DU + i)), DU + i);
                }
            if (Simd.Width >= 256)
                for (; i + 8 <= n; i += 8)
                {
                    Vector256<float> g = Vector256.Load(G + i), dy = Vector256.Load(DY + i), s = Sigmoid(g);
                    if (DG != null)
                    {
                        var d = Vector256.FusedMultiplyAdd(g * s, Vector256<float>.One - s, s);
                        Vector256.Store(Vector256.FusedMultiplyAdd(dy * Vector256.Load(U + i), d, Vector256.Load(DG + i)), DG + i);
                    }
                    if (DU != null) Vector256.Store(Vector256.FusedMultiplyAdd(dy, g * s, Vector256.Load(DU + i)), DU + i);
                }
            for (; i < n; i++)
            {
                float g = G[i], dy = DY[i], s = Sigmoid(g);
                if (DG != null) DG[i] = MathF.FusedMultiplyAdd(dy * U[i], MathF.FusedMultiplyAdd(g * s, 1.0f - s, s), DG[i]);
                if (DU != null) DU[i] = MathF.FusedMultiplyAdd(dy, g * s, DU[i]);
            }
        }
    }
}
