// Contract: the tokens == 1 matvec y = W·x (+b): streams W once, widening BF16/F16 in registers; allocation-free.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

public static unsafe partial class MatMul
{
    // Rows per work item: large enough to amortize dispatch, small enough (~64 KB of weights at 4096 cols BF16 x 8) to balance.
    const int DecodeRowsPerItem = 8;

    static void Decode(float* y, float* x, WeightMatrix w, float* bias)
    {
        var job = new DecodeJob { Y = y, X = x, W = w.Data, DType = w.DType, Rows = w.Rows, Cols = w.Cols, Bias = bias };
        int items = (w.Rows + DecodeRowsPerItem - 1) / DecodeRowsPerItem;
        // Split only when each thread streams at least ~64K weights; below that the hand-off dominates.
        Workers.Run(ref job, items, Math.Max(1, 65536 / Math.Max(1, w.Cols * DecodeRowsPerItem)));
    }

    struct DecodeJob : IParallelJob
    {
        public float* Y, X, Bias; public void* W; public DType DType; public int Rows, Cols;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            int r0 = start * DecodeRowsPerItem, r1 = Math.Min(Rows, end * DecodeRowsPerItem);
            for (int r = r0; r < r1; r++)
            {
                float s = DType switch
                {
                    DType.F32 => VecOps.Dot((float*)W + (long)r * Cols, X, Cols),
                    DType.BF16 => DotBF16((ushort*)W + (long)r * Cols, X, Cols),
                    _ => DotF16((ushort*)W + (long)r * Cols, X, Cols),
                };
                Y[r] = Bias == null ? s : s + Bias[r];
            }
        }
    }

    /// <summary>Σ bf16(w[i]) · x[i]; bf16 → f32 is the 16-bit left shift of the bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotBF16(ushort* w, float* x, int n)
    {
        int i = 0;
        float s = 0;
        if (Simd.Width >= 512)
        {
            Vector512<float> s0 = default, s1 = default;
            for (; i + 32 <= n; i += 32)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(w + i));
                s0 = Vector512.FusedMultiplyAdd((lo << 16).AsSingle(), Vector512.Load(x + i), s0);
                s1 = Vector512.FusedMultiplyAdd((hi << 16).AsSingle(), Vector512.Load(x + i + 16), s1);
            }
            s = Vector512.Sum(s0 + s1);
        }
        else if (Simd.Width >= 256)
        {
            Vector256<float> s0 = default, s1 = default;
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(w + i));
                s0 = Vector256.FusedMultiplyAdd((lo << 16).AsSingle(), Vector256.Load(x + i), s0);
                s1 = Vector256.FusedMultiplyAdd((hi << 16).AsSingle(), Vector256.Load(x + i + 8), s1);
            }
            s = Vector256.Sum(s0 + s1);
        }
        for (; i < n; i++) s = MathF.FusedMultiplyAdd(DTypeConvert.BF16ToF32(w[i]), x[i], s);
        return s;
    }

    /// <summary>Σ f16(w[i]) · x[i], converting in registers (<see cref="HalfToSingle(Vector512{uint})"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotF16(ushort* w, float* x, int n)
    {
        int i = 0;
        float s = 0;
        if (Simd.Width >= 512)
        {
            Vector512<float> s0 = default, s1 = default;
            for (; i + 32 <= n; i += 32)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(w + i));
                s0 = Vector512.FusedMultiplyAdd(HalfToSingle(lo), Vector512.Load(x + i), s0);
                s1 = Vector512.FusedMultiplyAdd(HalfToSingle(hi), Vector512.Load(x + i + 16), s1);
            }
            s = Vector512.Sum(s0 + s1);
        }
        else if (Simd.Width >= 256)
        {
            Vector256<float> s0 = default, s1 = default;
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(w + i));
                s0 = Vector256.FusedMultiplyAdd(HalfToSingle(lo), Vector256.Load(x + i), s0);
                s1 = Vector256.FusedMultiplyAdd(HalfToSingle(hi), Vector256.Load(x + i + 8), s1);
            }
            s = Vector256.Sum(s0 + s1);
        }
        for (; i < n; i++) s = MathF.FusedMultiplyAdd((float)BitConverter.UInt16BitsToHalf(w[i]), x[i], s);
        return s;
    }

    // Exact f16 → f32 on zero-extended bits: shift exponent+mantissa into place and multiply by 2^112 (rebias 15 → 127;
    // also normalizes f16 subnormals exactly); Inf/NaN (exponent 31) get the f32 max exponent instead; sign OR-ed back.
    const float Pow2To112 = 5.192296858534828e33f;   // 2^112, exactly representable

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> HalfToSingle(Vector512<uint> h)
    {
        var em = h & Vector512.Create(0x7fffu);
        var f = (em << 13).AsSingle() * Vector512.Create(Pow2To112);
        var special = Vector512.GreaterThanOrEqual(em, Vector512.Create(0x7c00u));
        var inf = ((em << 13) | Vector512.Create(0x7f800000u)).AsSingle();
        return Vector512.ConditionalSelect(special.AsSingle(), inf, f) | ((h & Vector512.Create(0x8000u)) << 16).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> HalfToSingle(Vector256<uint> h)
    {
        var em = h & Vector256.Create(0x7fffu);
        var f = (em << 13).AsSingle() * Vector256.Create(Pow2To112);
        var special = Vector256.GreaterThanOrEqual(em, Vector256.Create(0x7c00u));
        var inf = ((em << 13) | Vector256.Create(0x7f800000u)).AsSingle();
        return Vector256.ConditionalSelect(special.AsSingle(), inf, f) | ((h & Vector256.Create(0x8000u)) << 16).AsSingle();
    }
}
