using Llava.Tensors;

namespace Llava.Models.Gguf;

/// <summary>
/// What the exported weight matrices become (1-D tensors such as norms and biases always stay F32, as llama.cpp's
/// converter and quantizer keep them).
/// <list type="bullet">
/// <item>F32, F16, BF16: every matrix in that type (convert_hf_to_gguf.py's <c>--outtype</c>).</item>
/// <item>Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q6_K: llama.cpp's file types of those names, with llama-quantize's
/// per-tensor rules (<c>llama_tensor_get_type</c>): e.g. Q4_0 puts <c>output.weight</c> in Q6_K, Q2_K puts attn_v,
/// ffn_down and attn_output in Q3_K/Q4_K.</item>
/// <item>Q3_K, Q4_K, Q5_K: llama.cpp has no file type of these names (llama-quantize reads "Q4_K" as Q4_K_M); here they
/// mean every matrix in that type, i.e. <c>llama-quantize --pure</c> Q3_K_S / Q4_K_S / Q5_K_S, whose file_type they
/// carry.</item>
/// <item>Q4_K_S, Q4_K_M, Q5_K_M: llama.cpp's mixes (output Q6_K, more bits for some attn_v / ffn_down layers).</item>
/// </list>
/// A row length that is not a multiple of the type's block falls back as llama.cpp does
/// (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, Q2_K/Q3_K → Q4_0, then F16).
/// </summary>
public enum GgufOutputType
{
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q4_K_S,
    Q4_K_M,
    Q5_K_M,
}

/// <summary>Names, llama.cpp file-type numbers and base tensor types of <see cref="GgufOutputType"/>.</summary>
public static class GgufOutputTypes
{
    public static IReadOnlyList<GgufOutputType> All { get; } = Enum.GetValues<GgufOutputType>();

    /// <summary>The lower-case name used in file names and on the command line (<c>q4_k_m</c>).</summary>
    public static string Name(this GgufOutputType t) => t.ToString().ToLowerInvariant();

    /// <summary>Parses <c>f16</c>, <c>Q4_K_M</c>, <c>q8_0</c>, ... (case-insensitive); null when unknown.</summary>
    public static GgufOutputType? TryParse(string? s)
    {
        if (string.IsNullOrWhiteSpace(s)) return null;
        foreach (var t in All)
            if (string.Equals(t.ToString(), s.Trim(), StringComparison.OrdinalIgnoreCase)) return t;
        return null;
    }

    public static bool IsFloat(this GgufOutputType t) => t is GgufOutputType.F32 or GgufOutputType.F16 or GgufOutputType.BF16;

    /// <summary>True for llama.cpp's mixes, whose per-tensor types follow llama_tensor_get_type.</summary>
    public static bool IsMix(this GgufOutputType t) => t is GgufOutputType.Q4_K_S or GgufOutputType.Q4_K_M or GgufOutputType.Q5_K_M;

    /// <summary>The type of an ordinary weight matrix (llama_ftype_get_default_type).</summary>
    public static GgmlType BaseType(this GgufOutputType t) => t switch
    {
        GgufOutputType.F32 => GgmlType.F32,
        GgufOutputType.F16 => GgmlType.F16,
        GgufOutputType.BF16 => GgmlType.BF16,
        GgufOutputType.Q8_0 => GgmlType.Q8_0,
        GgufOutputType.Q4_0 => GgmlType.Q4_0,
        GgufOutputType.Q4_1 => GgmlType.Q4_1,
        GgufOutputType.Q5_0 => GgmlType.Q5_0,
        GgufOutputType.Q5_1 => GgmlType.Q5_1,
        GgufOutputType.Q2_K => GgmlType.Q2_K,
        GgufOutputType.Q3_K => GgmlType.Q3_K,
        GgufOutputType.Q4_K or GgufOutputType.Q4_K_S or GgufOutputType.Q4_K_M => GgmlType.Q4_K,
        GgufOutputType.Q5_K or GgufOutputType.Q5_K_M => GgmlType.Q5_K,
        GgufOutputType.Q6_K => GgmlType.Q6_K,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>general.file_type: llama.cpp's <c>llama_ftype</c> number.</summary>
    public static uint FileType(this GgufOutputType t) => t switch
    {
        GgufOutputType.F32 => 0,     // LLAMA_FTYPE_ALL_F32
        GgufOutputType.F16 => 1,     // MOSTLY_F16
        GgufOutputType.Q4_0 => 2,    // MOSTLY_Q4_0
        GgufOutputType.Q4_1 => 3,    // MOSTLY_Q4_1
        GgufOutputType.Q8_0 => 7,    // MOSTLY_Q8_0
        GgufOutputType.Q5_0 => 8,    // MOSTLY_Q5_0
        GgufOutputType.Q5_1 => 9,    // MOSTLY_Q5_1
        GgufOutputType.Q2_K => 10,   // MOSTLY_Q2_K
        GgufOutputType.Q3_K => 11,   // MOSTLY_Q3_K_S (pure)
        GgufOutputType.Q4_K => 14,   // MOSTLY_Q4_K_S (pure)
        GgufOutputType.Q4_K_S => 14, // MOSTLY_Q4_K_S
        GgufOutputType.Q4_K_M => 15, // MOSTLY_Q4_K_M
        GgufOutputType.Q5_K => 16,   // MOSTLY_Q5_K_S (pure)
        GgufOutputType.Q5_K_M => 17, // MOSTLY_Q5_K_M
        GgufOutputType.Q6_K => 18,   // MOSTLY_Q6_K
        GgufOutputType.BF16 => 32,   // MOSTLY_BF16
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>Q3_K / Q4_K / Q5_K have no mix of their own: every matrix gets the type (llama-quantize --pure).</summary>
    internal static bool IsPureByDefinition(this GgufOutputType t) => t is GgufOutputType.Q3_K or GgufOutputType.Q4_K or GgufOutputType.Q5_K;
}
