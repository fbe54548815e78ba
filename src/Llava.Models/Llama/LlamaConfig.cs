using Llava.Formats;
using System.Text.Json;

namespace Llava.Models.Llama;

/// <summary>LLaMA decoder hyper-parameters (transformers' LlamaConfig); missing keys take LlamaConfig's defaults.</summary>
public sealed record LlamaConfig
{
    public int VocabSize { get; init; } = 32000;
    public int HiddenSize { get; init; } = 4096;
    public int IntermediateSize { get; init; } = 11008;
    public int NumLayers { get; init; } = 32;
    public int NumHeads { get; init; } = 32;
    public int NumKvHeads { get; init; } = 32;
    public int HeadDim { get; init; } = 128;
    public float RmsNormEps { get; init; } = 1e-6f;
    public double RopeTheta { get; init; } = 10000;
    public RopeScaling? RopeScaling { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public bool TieWordEmbeddings { get; init; }
    public string HiddenAct { get; init; } = "silu";
    public int BosTokenId { get; init; } = 1;
    public int[] EosTokenIds { get; init; } = [2];
    /// <summary>Weights converted by llama.cpp (GGUF) have permuted q/k rows and need ggml's interleaved RoPE.</summary>
    public bool RopeInterleaved { get; init; }

    public static LlamaConfig FromJson(JsonElement e)
    {
        var d = new LlamaConfig();
        int hidden = e.Int("hidden_size", d.HiddenSize);
        int heads = e.Int("num_attention_heads", d.NumHeads);
        var eos = e.IntList("eos_token_id");
        string act = e.Str("hidden_act") ?? "silu";
        if (act is not ("silu" or "swish"))
            throw new ModelFormatException($"LLaMA hidden_act '{act}' is not supported (expected silu)");
        return new LlamaConfig
        {
            VocabSize = e.Int("vocab_size", d.VocabSize),
            HiddenSize = hidden,
            IntermediateSize = e.Int("intermediate_size", d.IntermediateSize),
            NumLayers = e.Int("num_hidden_layers", d.NumLayers),
            NumHeads = heads,
            NumKvHeads = e.IntOrNull("num_key_value_heads") ?? heads,
            HeadDim = e.IntOrNull("head_dim") ?? hidden / heads,
            RmsNormEps = (float)e.Double("rms_norm_eps", d.RmsNormEps),
            RopeTheta = e.Double("rope_theta", d.RopeTheta),
            RopeScaling = RopeScaling.FromJson(e),
            MaxPositionEmbeddings = e.Int("max_position_embeddings", d.MaxPositionEmbeddings),
            TieWordEmbeddings = e.Bool("tie_word_embeddings", false),
            HiddenAct = act,
            BosTokenId = e.IntOrNull("bos_token_id") ?? 1,
            EosTokenIds = eos.Length > 0 ? eos : [2],
        };
    }
}
