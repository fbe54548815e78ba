// Contract: internal plumbing that applies a unary/binary per-element operator over a span with SIMD and all workers.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

/// <summary>A per-element operator in three widths; static abstract so the generic loops specialize and inline.</summary>
internal interface IUnaryOp
{
    static abstract float Apply(float x);
    static abstract Vector256<float> Apply(Vector256<float> x);
    static abstract Vector512<float> Apply(Vector512<float> x);
}

/// <summary>y = op(y, x) per element.</summary>
internal interface IBinaryOp
{
    static abstract float Apply(float y, float x);
    static abstract Vector256<float> Apply(Vector256<float> y, Vector256<float> x);
    static abstract Vector512<float> Apply(Vector512<float> y, Vector512<float> x);
}

internal static unsafe class ElementwiseJobs
{
    // Below this many elements a job runs inline: thread hand-off costs a few µs, ~ the time for 32K cheap ops.
    const int ParallelBlock = 16384;

    public static void Unary<TOp>(Span<float> x) where TOp : struct, IUnaryOp
    {
        fixed (float* p = x)
        {
            var job = new UnaryJob<TOp> { P = p, N = x.Length };
            Workers.Run(ref job, (x.Length + ParallelBlock - 1) / ParallelBlock, 2);
        }
    }

    public static void Binary<TOp>(Span<float> y, ReadOnlySpan<float> x) where TOp : struct, IBinaryOp
    {
        if (x.Length != y.Length) throw new ArgumentException($"length mismatch: {y.Length} vs {x.Length}");
        fixed (float* py = y)
        fixed (float* px = x)
        {
            var job = new BinaryJob<TOp> { Y = py, X = px, N = y.Length };
            Workers.Run(ref job, (y.Length + ParallelBlock - 1) / ParallelBlock, 2);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void UnaryLoop<TOp>(float* p, int n) where TOp : struct, IUnaryOp
    {
        int i = 0;
        if (Simd.Width >= 512)
            for (; i + 16 <= n; i += 16) Vector512.Store(TOp.Apply(Vector512.Load(p + i)), p + i);
        if (Simd.Width >= 256)
            for (; i + 8 <= n; i += 8) Vector256.Store(TOp.Apply(Vector256.Load(p + i)), p + i);
        for (; i < n; i++) p[i] = TOp.Apply(p[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void BinaryLoop<TOp>(float* y, float* x, int n) where TOp : struct, IBinaryOp
    {
        int i = 0;
        if (Simd.Width >= 512)
            for (; i + 16 <= n; i += 16) Vector512.Store(TOp.Apply(Vector512.Load(y + i), Vector512.Load(x + i)), y + i);
        if (Simd.Width >= 256)
            for (; i + 8 <= n; i += 8) Vector256.Store(TOp.Apply(Vector256.Load(y + i), Vector256.Load(x + i)), y + i);
        for (; i < n; i++) y[i] = TOp.Apply(y[i], x[i]);
    }

    struct UnaryJob<TOp> : IParallelJob where TOp : struct, IUnaryOp
    {
        public float* P; public int N;
        public void Execute(int start, int end)
        {
            int a = start * ParallelBlock, b = Math.Min(N, end * ParallelBlock);
            UnaryLoop<TOp>(P + a, b - a);
        }
    }

    struct BinaryJob<TOp> : IParallelJob where TOp : struct, IBinaryOp
    {
        public float* Y, X; public int N;
        public void Execute(int start, int end)
        {
            int a = start * ParallelBlock, b = Math.Min(N, end * ParallelBlock);
            BinaryLoop<TOp>(Y + a, X + a, b - a);
        }
    }
}
