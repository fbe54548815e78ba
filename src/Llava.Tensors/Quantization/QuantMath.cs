// Contract: the scalar rounding/conversion primitives ggml's reference quantizers rely on, reproduced exactly (incl. out-of-range behaviour on x86-64).
using System.Runtime.CompilerServices;

namespace Llava.Tensors.Quantization;

internal static class QuantMath
{
    /// <summary>ggml's nearest_int: adds 1.5·2^23 and reads the low mantissa bits (round half to even for |x| &lt; 2^22;
    /// garbage but deterministic outside, exactly as in C).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int NearestInt(float f)
    {
        int i = BitConverter.SingleToInt32Bits(f + 12582912f);
        return (i & 0x007fffff) - 0x00400000;
    }

    /// <summary>C's float → int conversion as x86-64 compilers emit it (cvttss2si): truncation toward zero;
    /// NaN and out-of-range give int.MinValue (the "integer indefinite" value), unlike .NET's saturating cast.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int CvtTrunc(float f) => f >= -2147483648f && f < 2147483648f ? (int)f : int.MinValue;

    /// <summary>C's roundf: half away from zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float RoundF(float f) => MathF.Round(f, MidpointRounding.AwayFromZero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort ReadU16(ReadOnlySpan<byte> b, int o) => (ushort)(b[o] | b[o + 1] << 8);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteU16(Span<byte> b, int o, ushort v) { b[o] = (byte)v; b[o + 1] = (byte)(v >> 8); }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Half(ReadOnlySpan<byte> b, int o) => GgmlFp16.ToFloat(ReadU16(b, o));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SetHalf(Span<byte> b, int o, float v) => WriteU16(b, o, GgmlFp16.FromFloat(v));

    /// <summary>Checks that <paramref name="elements"/> is a whole number of blocks and that the byte span holds them; returns the block count.</summary>
    public static int Blocks(GgmlType type, int elements, int bytes, string bytesName)
    {
        var (bs, ts) = GgmlTypeInfo.Layout(type)!.Value;
        if (elements % bs != 0) throw new ArgumentException($"{elements} elements is not a multiple of the {type} block size {bs}");
        int nb = elements / bs;
        if (bytes < (long)nb * ts) throw new ArgumentException($"{type}: {bytes} bytes hold fewer than {nb} blocks of {ts} bytes", bytesName);
        return nb;
    }
}
