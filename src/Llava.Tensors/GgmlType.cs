namespace Llava.Tensors;

/// <summary>
/// Tensor element types of GGUF files, numbered exactly as ggml's <c>ggml_type</c> (ggml/docs/gguf.md).
/// Removed values (4, 5: Q4_2, Q4_3) stay unused.
/// </summary>
public enum GgmlType
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
}

/// <summary>Block geometry of each <see cref="GgmlType"/>: elements per block and bytes per block.</summary>
public static class GgmlTypeInfo
{
    /// <summary>(elements per block, bytes per block), or null for a type this engine does not know.</summary>
    public static (int BlockSize, int TypeSize)? Layout(GgmlType t) => t switch
    {
        GgmlType.F32 => (1, 4),
        GgmlType.F16 => (1, 2),
        GgmlType.BF16 => (1, 2),
        GgmlType.F64 => (1, 8),
        GgmlType.I8 => (1, 1),
        GgmlType.I16 => (1, 2),
        GgmlType.I32 => (1, 4),
        GgmlType.I64 => (1, 8),
        GgmlType.Q4_0 => (32, 2 + 16),
        GgmlType.Q4_1 => (32, 2 + 2 + 16),
        GgmlType.Q5_0 => (32, 2 + 4 + 16),
        GgmlType.Q5_1 => (32, 2 + 2 + 4 + 16),
        GgmlType.Q8_0 => (32, 2 + 32),
        GgmlType.Q8_1 => (32, 4 + 4 + 32),
        GgmlType.Q2_K => (256, 256 / 16 + 256 / 4 + 2 + 2),
        GgmlType.Q3_K => (256, 256 / 8 + 256 / 4 + 12 + 2),
        GgmlType.Q4_K => (256, 2 + 2 + 12 + 256 / 2),
        GgmlType.Q5_K => (256, 2 + 2 + 12 + 256 / 8 + 256 / 2),
        GgmlType.Q6_K => (256, 256 / 2 + 256 / 4 + 256 / 16 + 2),
        GgmlType.Q8_K => (256, 4 + 256 + 256 / 16 * 2),
        _ => null,
    };

    /// <summary>Bytes of a row of <paramref name="elements"/> values; throws when not a whole number of blocks.</summary>
    public static long RowBytes(GgmlType t, long elements)
    {
        var (block, size) = Layout(t) ?? throw new NotSupportedException($"GGML type {t} is not supported");
        if (elements % block != 0) throw new ArgumentException($"{elements} elements is not a multiple of the {t} block size {block}");
        return checked(elements / block * size);
    }
}
