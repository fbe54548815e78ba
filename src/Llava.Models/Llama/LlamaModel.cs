using Llava.Models.Loading;
using Llava.Tensors;

namespace Llava.Models.Llama;

/// <summary>
/// The LLaMA decoder (transformers' LlamaForCausalLM): token embeddings, decoder layers, final RMSNorm and an
/// lm_head that is its own matrix or tied to the embeddings. Weights are immutable and shared; per-conversation
/// state lives in <see cref="KvCache"/> and <see cref="LlamaScratch"/>.
/// </summary>
public sealed class LlamaModel
{
    public LlamaConfig Config { get; }
    readonly WeightMatrix embedTokens;      // (V, H)
    readonly LlamaDecoderLayer[] layers;
    readonly float[] finalNorm;             // (H)
    readonly WeightMatrix lmHead;           // (V, H)
    readonly RotaryEmbedding rope;

    /// <param name="prefix">"model." (original / old llava-hf: "language_model.model.") for the body.</param>
    /// <param name="lmHeadName">e.g. "lm_head.weight" or "language_model.lm_head.weight".</param>
    public LlamaModel(WeightReader r, string prefix, string lmHeadName, LlamaConfig c)
    {
        Config = c;
        embedTokens = r.Matrix(prefix + "embed_tokens.weight", c.VocabSize, c.HiddenSize);
        layers = new LlamaDecoderLayer[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++) layers[i] = new LlamaDecoderLayer(r, $"{prefix}layers.{i}.", c, i);
        finalNorm = r.Vector(prefix + "norm.weight", c.HiddenSize);
        lmHead = r.Has(lmHeadName) || !c.TieWordEmbeddings ? r.Matrix(lmHeadName, c.VocabSize, c.HiddenSize) : embedTokens;
        rope = new RotaryEmbedding(c);
        var matrices = layers.SelectMany(l => l.Matrices).Append(embedTokens).Append(lmHead).ToArray();
        HasQuantizedWeights = matrices.Any(m => m.IsQuantized);
        AllF32Weights = matrices.All(m => m.Format == GgmlType.F32);
    }

    /// <summary>Some matrix is block-quantized (a quantized GGUF, or --load-8bit / --load-4bit).</summary>
    public bool HasQuantizedWeights { get; }
    /// <summary>Every matrix is stored as f32.</summary>
    public bool AllF32Weights { get; }

    public int VocabSize => Config.VocabSize;

    /// <summary>ids → embeddings (T, H). Ids outside the vocabulary are an error.</summary>
    public void Embed(Span<float> output, ReadOnlySpan<int> ids) => Embedding.Lookup(output, embedTokens, ids);

    /// <summary>
    /// Runs the decoder over <paramref name="tokens"/> new positions appended after <c>cache.Length</c>.
    /// hidden (T, H) holds the input embeddings and receives the final-normed hidden states.
    /// </summary>
    public void Forward(Span<float> hidden, int tokens, KvCache cache, LlamaScratch scratch)
    {
        int start = cache.Length;
        cache.EnsureRoom(start, tokens);
        scratch.Ensure(tokens);
        rope.Compute(scratch.Cos, scratch.Sin, start, tokens, start + tokens);
        for (int l = 0; l < layers.Length; l++) layers[l].Forward(hidden, tokens, start, cache, scratch);
        cache.SetLength(start + tokens);
        GC.KeepAlive(cache);   // its native storage was used through spans above
        int h = Config.HiddenSize;
        var normed = scratch.Out.AsSpan(0, tokens * h);
        RmsNorm.Forward(normed, hidden[..(tokens * h)], finalNorm, tokens, h, Config.RmsNormEps);
        normed.CopyTo(hidden);
    }

    /// <summary>logits (rows, V) of final-normed hidden rows (rows, H).</summary>
    public void Logits(Span<float> logits, ReadOnlySpan<float> normedRows, int rows) =>
        MatMul.Forward(logits, normedRows, lmHead, default, rows);
}
