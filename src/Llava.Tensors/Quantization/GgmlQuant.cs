// Contract: type-dispatched entry points over the per-type block codecs (Dequantize / QuantizeReference / row sizes).
namespace Llava.Tensors.Quantization;

/// <summary>Dispatch by <see cref="GgmlType"/> to the block codecs <see cref="Q4_0"/> … <see cref="Q8_K"/>.</summary>
public static class GgmlQuant
{
    /// <summary>Block types with a codec here (and, except Q8_K, a matmul kernel).</summary>
    public static readonly GgmlType[] Types =
        [GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q8_0,
         GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q8_K];

    public static bool IsSupported(GgmlType t) => Array.IndexOf(Types, t) >= 0;

    /// <summary>Decodes dst.Length elements (a whole number of blocks) from <paramref name="blocks"/>; bit-exact to ggml's to_float.</summary>
    public static void Dequantize(GgmlType type, ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        switch (type)
        {
            case GgmlType.Q4_0: Q4_0.Dequantize(blocks, dst); break;
            case GgmlType.Q4_1: Q4_1.Dequantize(blocks, dst); break;
            case GgmlType.Q5_0: Q5_0.Dequantize(blocks, dst); break;
            case GgmlType.Q5_1: Q5_1.Dequantize(blocks, dst); break;
            case GgmlType.Q8_0: Q8_0.Dequantize(blocks, dst); break;
            case GgmlType.Q2_K: Q2_K.Dequantize(blocks, dst); break;
            case GgmlType.Q3_K: Q3_K.Dequantize(blocks, dst); break;
            case GgmlType.Q4_K: Q4_K.Dequantize(blocks, dst); break;
            case GgmlType.Q5_K: Q5_K.Dequantize(blocks, dst); break;
            case GgmlType.Q6_K: Q6_K.Dequantize(blocks, dst); break;
            case GgmlType.Q8_K: Q8_K.Dequantize(blocks, dst); break;
            default: throw new NotSupportedException($"no dequantizer for {type}");
        }
    }

    /// <summary>Encodes src (a whole number of blocks) into <paramref name="dst"/>; bit-exact to ggml's quantize_row_*_ref.</summary>
    public static void QuantizeReference(GgmlType type, ReadOnlySpan<float> src, Span<byte> dst)
    {
        switch (type)
        {
            case GgmlType.Q4_0: Q4_0.QuantizeReference(src, dst); break;
            case GgmlType.Q4_1: Q4_1.QuantizeReference(src, dst); break;
            case GgmlType.Q5_0: Q5_0.QuantizeReference(src, dst); break;
            case GgmlType.Q5_1: Q5_1.QuantizeReference(src, dst); break;
            case GgmlType.Q8_0: Q8_0.QuantizeReference(src, dst); break;
            case GgmlType.Q2_K: Q2_K.QuantizeReference(src, dst); break;
            case GgmlType.Q3_K: Q3_K.QuantizeReference(src, dst); break;
            case GgmlType.Q4_K: Q4_K.QuantizeReference(src, dst); break;
            case GgmlType.Q5_K: Q5_K.QuantizeReference(src, dst); break;
            case GgmlType.Q6_K: Q6_K.QuantizeReference(src, dst); break;
            case GgmlType.Q8_K: Q8_K.QuantizeReference(src, dst); break;
            default: throw new NotSupportedException($"no quantizer for {type}");
        }
    }
}
