using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llava.Tensors;

/// <summary>Exact widening conversions of half-precision storage to f32, SIMD with scalar tails.</summary>
public static unsafe class DTypeConvert
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BF16ToF32(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Round-to-nearest-even f32 → bf16, as PyTorch's <c>.to(torch.bfloat16)</c> (NaN stays NaN).</summary>
    public static ushort F32ToBF16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x40);
        u += 0x7fffu + ((u >> 16) & 1);
        return (ushort)(u >> 16);
    }

    public static void BF16ToF32(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short");
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 32 <= src.Length; i += 32)
            {
                var v = Vector512.Create(src.Slice(i, 32));
                var (lo, hi) = Vector512.Widen(v);
                (lo << 16).AsSingle().CopyTo(dst.Slice(i));
                (hi << 16).AsSingle().CopyTo(dst.Slice(i + 16));
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 16 <= src.Length; i += 16)
            {
                var v = Vector256.Create(src.Slice(i, 16));
                var (lo, hi) = Vector256.Widen(v);
                (lo << 16).AsSingle().CopyTo(dst.Slice(i));
                (hi << 16).AsSingle().CopyTo(dst.Slice(i + 8));
            }
        }
        for (; i < src.Length; i++) dst[i] = BF16ToF32(src[i]);
    }

    public static void F16ToF32(ReadOnlySpan<Half> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short");
        System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(src, dst[..src.Length]);
    }

    // ---- f16 KV cache: f32 → f16 on write, f16 → f32 on read (.NET 10 exposes no vcvtps2ph / vcvtph2ps, so both are
    // done with integer/float bit manipulation in vector registers). Scalar twins: F16KvReference.

    /// <summary>Round-to-nearest-even f32 → f16 (IEEE binary16, as <c>(Half)x</c> and torch's <c>.half()</c>): overflow → ±inf,
    /// NaN stays NaN. Vectorized by System.Numerics.Tensors.</summary>
    public static void F32ToF16(ReadOnlySpan<float> src, Span<Half> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short");
        if (Simd.Width == 0)
        {
            for (int i = 0; i < src.Length; i++) dst[i] = (Half)src[i];
            return;
        }
        System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(src, dst[..src.Length]);
    }

    /// <summary>
    /// Exact f16 → f32 of <paramref name="n"/> values (any bits: subnormals, ±inf, NaN payloads kept), 8 per step in
    /// registers: sign-extend the 16-bit words to 32 bits, move exponent+mantissa to f32's position (&lt;&lt; 13), and
    /// multiply by 2^112 to rebias the exponent (exact, and it normalizes f16 subnormals); exponent 31 (inf/NaN)
    /// gets f32's all-ones exponent. Small enough to inline into kernels that convert a few K/V rows at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void F16ToF32(ushort* src, float* dst, int n)
    {
        int i = 0;
        if (Simd.Width >= 256 && Vector256.IsHardwareAccelerated)
            for (; i + 8 <= n; i += 8) HalfToSingle8(src + i).Store(dst + i);
        for (; i < n; i++) dst[i] = (float)BitConverter.UInt16BitsToHalf(src[i]);
    }

    const float TwoTo112 = 5.1922968585348276E+33f;   // 2^112 = 2^(127 − 15)

    /// <summary>8 f16 values at <paramref name="p"/> widened exactly to f32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> HalfToSingle8(ushort* p)
    {
        Vector256<int> x = Avx2.IsSupported
            ? Avx2.ConvertToVector256Int32((short*)p)                                   // vpmovsxwd
            : Vector256.WidenLower(Vector128.Load((short*)p).ToVector256Unsafe());
        Vector256<int> em = (x << 13) & Vector256.Create(0x0FFFE000);                   // |h| in f32's exponent/mantissa bits
        Vector256<float> f = em.AsSingle() * Vector256.Create(TwoTo112);                // rebias 15 → 127 (exact, normalizes subnormals)
        Vector256<int> special = Vector256.GreaterThan(em, Vector256.Create(0x0F7FFFFF)) & Vector256.Create(0x7F800000);   // exponent 31: inf/NaN
        Vector256<int> sign = x & Vector256.Create(unchecked((int)0x80000000));          // sign-extended: bit 31 = h's sign
        return (f.AsInt32() | special | sign).AsSingle();
    }
}
