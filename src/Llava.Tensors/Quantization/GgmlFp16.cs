// Contract: fp16 <-> fp32 conversions exactly as ggml's portable ggml_compute_fp16_to_fp32 / ggml_compute_fp32_to_fp16 (incl. NaN bits).
using System.Runtime.CompilerServices;

namespace Llava.Tensors.Quantization;

/// <summary>
/// ggml's scalar half-precision conversions, bit for bit (the portable C routines ggml-base uses on x86 without
/// F16C). Both round to nearest even like <see cref="Half"/>; they differ from it only in NaN payloads
/// (fp32 → fp16 turns every NaN into the quiet NaN 0x7E00 with the sign kept).
/// </summary>
public static class GgmlFp16
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(ushort h)
    {
        uint w = (uint)h << 16;
        uint sign = w & 0x80000000u;
        uint twoW = w + w;
        // Normal and inf/NaN: move exponent+mantissa into place, rebias by multiplying with 2^-112.
        float normalized = BitConverter.UInt32BitsToSingle((twoW >> 4) + (0xE0u << 23)) * BitConverter.UInt32BitsToSingle(15u << 23);
        // Subnormal: the "magic bias" trick, exact.
        float denormalized = BitConverter.UInt32BitsToSingle((twoW >> 17) | (126u << 23)) - 0.5f;
        uint bits = twoW < (1u << 27) ? BitConverter.SingleToUInt32Bits(denormalized) : BitConverter.SingleToUInt32Bits(normalized);
        return BitConverter.UInt32BitsToSingle(sign | bits);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromFloat(float f)
    {
        float scaleToInf = BitConverter.UInt32BitsToSingle(239u << 23);   // 2^112
        float scaleToZero = BitConverter.UInt32BitsToSingle(17u << 23);   // 2^-110
        float b = MathF.Abs(f) * scaleToInf * scaleToZero;
        uint w = BitConverter.SingleToUInt32Bits(f);
        uint shl1W = w + w;
        uint sign = w & 0x80000000u;
        uint bias = shl1W & 0xFF000000u;
        if (bias < 0x71000000u) bias = 0x71000000u;
        b = BitConverter.UInt32BitsToSingle((bias >> 1) + 0x07800000u) + b;
        uint bits = BitConverter.SingleToUInt32Bits(b);
        uint expBits = (bits >> 13) & 0x00007C00u;
        uint mantissaBits = bits & 0x00000FFFu;
        uint nonsign = expBits + mantissaBits;
        return (ushort)((sign >> 16) | (shl1W > 0xFF000000u ? 0x7E00u : nonsign));
    }

    /// <summary>Fast fp16 → fp32 for kernels: exact for every finite value and ±inf (NaN stays NaN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float ToFloatFast(ushort h)
    {
        uint em = h & 0x7fffu;
        float f = em >= 0x7c00u ? BitConverter.UInt32BitsToSingle((em << 13) | 0x7f800000u)
                                : BitConverter.UInt32BitsToSingle(em << 13) * 5.192296858534828e33f;   // 2^112
        return BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(f) | ((uint)(h & 0x8000) << 16));
    }
}
