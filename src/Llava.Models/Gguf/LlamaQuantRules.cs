using Llava.Tensors;

namespace Llava.Models.Gguf;

/// <summary>The shape facts llama.cpp's quantizer looks at when it picks a tensor's type.</summary>
/// <param name="Layers">block_count</param>
/// <param name="Heads">attention.head_count</param>
/// <param name="KvHeads">attention.head_count_kv</param>
/// <param name="TiedEmbeddings">true when the file has no output.weight (token_embd is then quantized like the output)</param>
public sealed record LlamaQuantShape(int Layers, int Heads, int KvHeads, bool TiedEmbeddings);

/// <summary>
/// Which ggml type each tensor of a LLaMA GGUF gets, mirroring llama.cpp's <c>src/llama-quant.cpp</c>
/// (<c>tensor_allows_quantization</c>, <c>llama_tensor_get_type_impl</c>, <c>tensor_type_fallback</c>) for the
/// file types of <see cref="GgufOutputType"/>, without an importance matrix. llama.cpp walks tensors in layer order
/// (its weight_name_comparer), so its attn_v / ffn_down counters equal the layer index used here.
/// </summary>
public static class LlamaQuantRules
{
    enum Category { TokenEmbd, AttnQ, AttnK, AttnV, AttnOutput, FfnUp, FfnGate, FfnDown, Output, Other }

    /// <summary>
    /// The type of tensor <paramref name="name"/> with ggml dims <paramref name="ne"/> (ne[0] = row length).
    /// <paramref name="fallback"/> describes a shape fallback ("row 172 not divisible by 256 (q4_K) → q5_0"), else null.
    /// </summary>
    public static GgmlType Choose(GgufOutputType ftype, bool pure, string name, IReadOnlyList<long> ne, LlamaQuantShape shape, out string? fallback)
    {
        fallback = null;
        if (!AllowsQuantization(name, ne)) return GgmlType.F32;
        if (ftype.IsFloat()) return ftype.BaseType();
        var t = ftype.BaseType();
        if (!pure && !ftype.IsPureByDefinition()) t = Mix(ftype, t, name, ne[0], shape);
        return Fallback(t, ne[0], out fallback);
    }

    /// <summary>tensor_allows_quantization for LLaMA: 2-D (or more) tensors named *weight, except the norms.</summary>
    public static bool AllowsQuantization(string name, IReadOnlyList<long> ne)
    {
        int dims = 1;   // ggml_n_dims: the index of the last dimension above 1, plus one
        for (int i = ne.Count - 1; i >= 1; i--) if (ne[i] > 1) { dims = i + 1; break; }
        return dims >= 2 && name.EndsWith("weight", StringComparison.Ordinal) && !name.Contains("_norm.weight", StringComparison.Ordinal);
    }

    /// <summary>llama.cpp's use_more_bits: the first and last eighth of the layers, and every third in between.</summary>
    public static bool UseMoreBits(int layer, int layers) => layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;

    static Category CategoryOf(string name)
    {
        if (name == "output.weight") return Category.Output;
        if (name == "token_embd.weight") return Category.TokenEmbd;
        if (name.Contains("attn_v.weight")) return Category.AttnV;
        if (name.Contains("attn_k.weight")) return Category.AttnK;
        if (name.Contains("attn_q.weight")) return Category.AttnQ;
        if (name.Contains("attn_output.weight")) return Category.AttnOutput;
        if (name.Contains("ffn_up")) return Category.FfnUp;
        if (name.Contains("ffn_gate")) return Category.FfnGate;
        if (name.Contains("ffn_down")) return Category.FfnDown;
        return Category.Other;
    }

    static int LayerOf(string name)
    {
        if (!name.StartsWith("blk.", StringComparison.Ordinal)) return -1;
        int end = name.IndexOf('.', 4);
        return end > 4 && int.TryParse(name.AsSpan(4, end - 4), out int i) ? i : -1;
    }

    /// <summary>llama_tensor_get_type_impl, for the LLaMA architecture and the file types this exporter writes.</summary>
    static GgmlType Mix(GgufOutputType ftype, GgmlType t, string name, long rowLength, LlamaQuantShape s)
    {
        var cat = CategoryOf(name);
        int layer = LayerOf(name), n = s.Layers;
        int gqa = s.KvHeads > 0 ? s.Heads / s.KvHeads : 1;
        bool is70B = s.Layers == 80 && s.Heads != s.KvHeads;   // llama.cpp's LLM_TYPE_70B for the llama architecture
        if (cat == Category.Output || (s.TiedEmbeddings && cat == Category.TokenEmbd))
        {
            if (rowLength % BlockSize(t) != 0) t = GgmlType.Q8_0;
            else if (t != GgmlType.Q8_0) t = GgmlType.Q6_K;
        }
        else if (cat == Category.TokenEmbd)
        {
            // Only the IQ / TQ file types change token_embd.
        }
        else if (cat == Category.AttnV)
        {
            if (ftype == GgufOutputType.Q2_K) t = gqa >= 4 ? GgmlType.Q4_K : GgmlType.Q3_K;
            else if (ftype is GgufOutputType.Q4_K_M or GgufOutputType.Q5_K_M && UseMoreBits(layer, n)) t = GgmlType.Q6_K;
            else if (ftype == GgufOutputType.Q4_K_S && layer < 4) t = GgmlType.Q5_K;
            if (is70B && t is GgmlType.Q3_K or GgmlType.Q4_K) t = GgmlType.Q5_K;
        }
        else if (cat == Category.FfnDown)
        {
            if (ftype == GgufOutputType.Q2_K) t = GgmlType.Q3_K;
            else if (ftype == GgufOutputType.Q4_K_M) { if (UseMoreBits(layer, n)) t = GgmlType.Q6_K; }
            else if (ftype == GgufOutputType.Q5_K_M && UseMoreBits(layer, n)) t = GgmlType.Q6_K;
            else if (ftype == GgufOutputType.Q4_K_S && layer < n / 8) t = GgmlType.Q5_K;
        }
        else if (cat == Category.AttnOutput)
        {
            if (ftype == GgufOutputType.Q2_K) t = GgmlType.Q3_K;
        }
        return t;
    }

    /// <summary>
    /// tensor_type_fallback: a row length the type's block does not divide takes llama.cpp's substitute, or F16 when
    /// that does not fit either. For Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 llama.cpp defines no substitute (it refuses the model);
    /// this exporter writes F16 instead, as convert_hf_to_gguf.py does for q8_0.
    /// </summary>
    public static GgmlType Fallback(GgmlType t, long rowLength, out string? note)
    {
        note = null;
        if (rowLength % BlockSize(t) == 0) return t;
        var r = t switch
        {
            GgmlType.Q2_K or GgmlType.Q3_K => GgmlType.Q4_0,
            GgmlType.Q4_K => GgmlType.Q5_0,
            GgmlType.Q5_K => GgmlType.Q5_1,
            GgmlType.Q6_K => GgmlType.Q8_0,
            _ => GgmlType.F16,
        };
        if (rowLength % BlockSize(r) != 0) r = GgmlType.F16;
        note = $"row length {rowLength} is not a multiple of {BlockSize(t)} ({t}) → {r}";
        return r;
    }

    static int BlockSize(GgmlType t) => GgmlTypeInfo.Layout(t)!.Value.BlockSize;
}
