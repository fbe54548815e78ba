using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

/// <summary>Exact widening conversions of half-precision storage to f32, SIMD with scalar tails.</summary>
public static class DTypeConvert
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
}
