// Contract: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (32-element blocks): Dequantize bit-exact to ggml's dequantize_row_*, QuantizeReference bit-exact to quantize_row_*_ref.
using static Llava.Tensors.Quantization.QuantMath;

namespace Llava.Tensors.Quantization;

/// <summary>Q4_0: {fp16 d; u8 qs[16]}; x = (q - 8)·d, low nibbles hold elements 0..15, high nibbles 16..31.</summary>
public static class Q4_0
{
    public const int BlockSize = 32, TypeSize = 18;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        int nb = Blocks(GgmlType.Q4_0, dst.Length, blocks.Length, nameof(blocks));
        for (int i = 0; i < nb; i++)
        {
            var b = blocks.Slice(i * TypeSize, TypeSize);
            var y = dst.Slice(i * BlockSize, BlockSize);
            float d = Half(b, 0);
            for (int j = 0; j < 16; j++)
            {
                y[j] = ((b[2 + j] & 0x0F) - 8) * d;
                y[j + 16] = ((b[2 + j] >> 4) - 8) * d;
            }
        }
    }

    public static void QuantizeReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        int nb = Blocks(GgmlType.Q4_0, src.Length, dst.Length, nameof(dst));
        for (int i = 0; i < nb; i++)
        {
            var x = src.Slice(i * BlockSize, BlockSize);
            var b = dst.Slice(i * TypeSize, TypeSize);
            float amax = 0, max = 0;
            for (int j = 0; j < 32; j++)
                if (amax < MathF.Abs(x[j])) { amax = MathF.Abs(x[j]); max = x[j]; }
            float d = max / -8;
            float id = d != 0 ? 1.0f / d : 0.0f;
            SetHalf(b, 0, d);
            for (int j = 0; j < 16; j++)
            {
                int xi0 = Math.Min(15, (int)(sbyte)CvtTrunc(x[j] * id + 8.5f));
                int xi1 = Math.Min(15, (int)(sbyte)CvtTrunc(x[j + 16] * id + 8.5f));
                b[2 + j] = (byte)(xi0 | xi1 << 4);
            }
        }
    }
}

/// <summary>Q4_1: {fp16 d; fp16 m; u8 qs[16]}; x = q·d + m.</summary>
public static class Q4_1
{
    public const int BlockSize = 32, TypeSize = 20;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        int nb = Blocks(GgmlType.Q4_1, dst.Length, blocks.Length, nameof(blocks));
        for (int i = 0; i < nb; i++)
        {
            var b = blocks.Slice(i * TypeSize, TypeSize);
            var y = dst.Slice(i * BlockSize, BlockSize);
            float d = Half(b, 0), m = Half(b, 2);
            for (int j = 0; j < 16; j++)
            {
                y[j] = (b[4 + j] & 0x0F) * d + m;
                y[j + 16] = (b[4 + j] >> 4) * d + m;
            }
        }
    }

    public static void QuantizeReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        int nb = Blocks(GgmlType.Q4_1, src.Length, dst.Length, nameof(dst));
        for (int i = 0; i < nb; i++)
        {
            var x = src.Slice(i * BlockSize, BlockSize);
            var b = dst.Slice(i * TypeSize, TypeSize);
            float min = float.MaxValue, max = -float.MaxValue;
            for (int j = 0; j < 32; j++) { if (x[j] < min) min = x[j]; if (x[j] > max) max = x[j]; }
            float d = (max - min) / 15;
            float id = d != 0 ? 1.0f / d : 0.0f;
            SetHalf(b, 0, d);
            SetHalf(b, 2, min);
            for (int j = 0; j < 16; j++)
            {
                int xi0 = Math.Min(15, (int)(sbyte)CvtTrunc((x[j] - min) * id + 0.5f));
                int xi1 = Math.Min(15, (int)(sbyte)CvtTrunc((x[j + 16] - min) * id + 0.5f));
                b[4 + j] = (byte)(xi0 | xi1 << 4);
            }
        }
    }
}

/// <summary>Q5_0: {fp16 d; u8 qh[4]; u8 qs[16]}; x = (q - 16)·d, bit 4 of element j in bit j of qh.</summary>
public static class Q5_0
{
    public const int BlockSize = 32, TypeSize = 22;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        int nb = Blocks(GgmlType.Q5_0, dst.Length, blocks.Length, nameof(blocks));
        for (int i = 0; i < nb; i++)
        {
            var b = blocks.Slice(i * TypeSize, TypeSize);
            var y = dst.Slice(i * BlockSize, BlockSize);
            float d = Half(b, 0);
            uint qh = (uint)(b[2] | b[3] << 8 | b[4] << 16 | b[5] << 24);
            for (int j = 0; j < 16; j++)
            {
                int xh0 = (int)((qh >> j) << 4) & 0x10, xh1 = (int)(qh >> (j + 12)) & 0x10;
                y[j] = (((b[6 + j] & 0x0F) | xh0) - 16) * d;
                y[j + 16] = (((b[6 + j] >> 4) | xh1) - 16) * d;
            }
        }
    }

    public static void QuantizeReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        int nb = Blocks(GgmlType.Q5_0, src.Length, dst.Length, nameof(dst));
        for (int i = 0; i < nb; i++)
        {
            var x = src.Slice(i * BlockSize, BlockSize);
            var b = dst.Slice(i * TypeSize, TypeSize);
            float amax = 0, max = 0;
            for (int j = 0; j < 32; j++)
                if (amax < MathF.Abs(x[j])) { amax = MathF.Abs(x[j]); max = x[j]; }
            float d = max / -16;
            float id = d != 0 ? 1.0f / d : 0.0f;
            SetHalf(b, 0, d);
            uint qh = 0;
            for (int j = 0; j < 16; j++)
            {
                int xi0 = (byte)Math.Min(31, (int)(sbyte)CvtTrunc(x[j] * id + 16.5f));
                int xi1 = (byte)Math.Min(31, (int)(sbyte)CvtTrunc(x[j + 16] * id + 16.5f));
                b[6 + j] = (byte)((xi0 & 0x0F) | (xi1 & 0x0F) << 4);
                qh |= ((uint)(xi0 & 0x10) >> 4) << j;
                qh |= ((uint)(xi1 & 0x10) >> 4) << (j + 16);
            }
            b[2] = (byte)qh; b[3] = (byte)(qh >> 8); b[4] = (byte)(qh >> 16); b[5] = (byte)(qh >> 24);
        }
    }
}

/// <summary>Q5_1: {fp16 d; fp16 m; u8 qh[4]; u8 qs[16]}; x = q·d + m.</summary>
public static class Q5_1
{
    public const int BlockSize = 32, TypeSize = 24;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        int nb = Blocks(GgmlType.Q5_1, dst.Length, blocks.Length, nameof(blocks));
        for (int i = 0; i < nb; i++)
        {
            var b = blocks.Slice(i * TypeSize, TypeSize);
            var y = dst.Slice(i * BlockSize, BlockSize);
            float d = Half(b, 0), m = Half(b, 2);
            uint qh = (uint)(b[4] | b[5] << 8 | b[6] << 16 | b[7] << 24);
            for (int j = 0; j < 16; j++)
            {
                int xh0 = (int)((qh >> j) << 4) & 0x10, xh1 = (int)(qh >> (j + 12)) & 0x10;
                y[j] = ((b[8 + j] & 0x0F) | xh0) * d + m;
                y[j + 16] = ((b[8 + j] >> 4) | xh1) * d + m;
            }
        }
    }

    public static void QuantizeReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        int nb = Blocks(GgmlType.Q5_1, src.Length, dst.Length, nameof(dst));
        for (int i = 0; i < nb; i++)
        {
            var x = src.Slice(i * BlockSize, BlockSize);
            var b = dst.Slice(i * TypeSize, TypeSize);
            float min = float.MaxValue, max = -float.MaxValue;
            for (int j = 0; j < 32; j++) { if (x[j] < min) min = x[j]; if (x[j] > max) max = x[j]; }
            float d = (max - min) / 31;
            float id = d != 0 ? 1.0f / d : 0.0f;
            SetHalf(b, 0, d);
            SetHalf(b, 2, min);
            uint qh = 0;
            for (int j = 0; j < 16; j++)
            {
                int xi0 = (byte)CvtTrunc((x[j] - min) * id + 0.5f);
                int xi1 = (byte)CvtTrunc((x[j + 16] - min) * id + 0.5f);
                b[8 + j] = (byte)((xi0 & 0x0F) | (xi1 & 0x0F) << 4);
                qh |= ((uint)(xi0 & 0x10) >> 4) << j;
                qh |= ((uint)(xi1 & 0x10) >> 4) << (j + 16);
            }
            b[4] = (byte)qh; b[5] = (byte)(qh >> 8); b[6] = (byte)(qh >> 16); b[7] = (byte)(qh >> 24);
        }
    }
}

/// <summary>Q8_0: {fp16 d; i8 qs[32]}; x = q·d.</summary>
public static class Q8_0
{
    public const int BlockSize = 32, TypeSize = 34;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        int nb = Blocks(GgmlType.Q8_0, dst.Length, blocks.Length, nameof(blocks));
        for (int i = 0; i < nb; i++)
        {
            var b = blocks.Slice(i * TypeSize, TypeSize);
            var y = dst.Slice(i * BlockSize, BlockSize);
            float d = Half(b, 0);
            for (int j = 0; j < 32; j++) y[j] = (sbyte)b[2 + j] * d;
        }
    }

    public static void QuantizeReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        int nb = Blocks(GgmlType.Q8_0, src.Length, dst.Length, nameof(dst));
        for (int i = 0; i < nb; i++)
        {
            var x = src.Slice(i * BlockSize, BlockSize);
            var b = dst.Slice(i * TypeSize, TypeSize);
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = MaxC(amax, MathF.Abs(x[j]));
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            SetHalf(b, 0, d);
            for (int j = 0; j < 32; j++) b[2 + j] = (byte)(sbyte)CvtTrunc(RoundF(x[j] * id));
        }
    }

    // C's MAX(a, b) macro: ((a) > (b) ? (a) : (b)); a NaN b yields b.
    static float MaxC(float a, float b) => a > b ? a : b;
}
