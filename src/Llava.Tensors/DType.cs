namespace Llava.Tensors;

/// <summary>Element types of stored and computed tensors. Names follow safetensors' spelling.</summary>
public enum DType
{
    F32,
    F16,
    BF16,
    F64,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

public static class DTypeInfo
{
    /// <summary>Bytes per element.</summary>
    public static int Size(this DType t) => t switch
    {
        DType.F64 or DType.I64 => 8,
        DType.F32 or DType.I32 => 4,
        DType.F16 or DType.BF16 or DType.I16 => 2,
        DType.I8 or DType.U8 or DType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>Parses a safetensors dtype string ("F32", "BF16", ...); null when unknown.</summary>
    public static DType? FromSafetensors(string s) => s switch
    {
        "F32" => DType.F32,
        "F16" => DType.F16,
        "BF16" => DType.BF16,
        "F64" => DType.F64,
        "I64" => DType.I64,
        "I32" => DType.I32,
        "I16" => DType.I16,
        "I8" => DType.I8,
        "U8" => DType.U8,
        "BOOL" => DType.Bool,
        _ => null,
    };

    public static string ToSafetensors(this DType t) => t == DType.Bool ? "BOOL" : t.ToString();

    public static bool IsFloat(this DType t) => t is DType.F32 or DType.F16 or DType.BF16 or DType.F64;
}
