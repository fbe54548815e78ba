using Llava.Formats;
using Llava.Models.Loading;
using Llava.Tensors;

namespace Llava.Models.Clip;

/// <summary>
/// The CLIP ViT image encoder up to the hidden state LLaVA selects. Port of transformers' CLIPVisionTransformer:
/// embeddings → pre_layrnorm (hidden_states[0]) → encoder layers (hidden_states[1..L]). The post-layernorm and
/// pooler are never used by LLaVA and are not loaded.
/// </summary>
public sealed class ClipVisionTower
{
    public ClipVisionConfig Config { get; }
    readonly ClipVisionEmbeddings embeddings;
    readonly float[] preLnWeight, preLnBias;   // (C)
    readonly ClipEncoderLayer[] layers;
    ClipScratch? spareScratch;   // reused by the next Forward (taken atomically: concurrent callers never share one)

    /// <param name="prefix">e.g. "vision_tower.vision_model." (llava-hf) or "vision_model." (a CLIP checkpoint).</param>
    /// <param name="layersNeeded">How many encoder layers to load (LLaVA never runs the ones after the selected state).</param>
    public ClipVisionTower(WeightReader r, string prefix, ClipVisionConfig c, int layersNeeded)
    {
        Config = c;
        embeddings = new ClipVisionEmbeddings(r, prefix + "embeddings.", c);
        preLnWeight = r.Vector(prefix + "pre_layrnorm.weight", c.HiddenSize);
        preLnBias = r.Vector(prefix + "pre_layrnorm.bias", c.HiddenSize);
        layers = new ClipEncoderLayer[layersNeeded];
        for (int i = 0; i < layersNeeded; i++) layers[i] = new ClipEncoderLayer(r, $"{prefix}encoder.layers.{i}.", c);
    }

    /// <summary>Converts a (possibly negative) hidden-state index into how many encoder layers must run.</summary>
    public static int LayersFor(ClipVisionConfig c, int featureLayer)
    {
        int index = featureLayer < 0 ? c.NumLayers + 1 + featureLayer : featureLayer;
        if (index < 0 || index > c.NumLayers)
            throw new ModelFormatException($"vision feature layer {featureLayer} is out of range for a {c.NumLayers}-layer CLIP tower");
        return index;
    }

    /// <summary>
    /// pixels (3, S, S) → hidden_states[layers loaded] (1 + patches, C).
    /// <paramref name="onHiddenState"/> sees every hidden state on the way (for debugging dumps).
    /// </summary>
    public float[] Forward(ReadOnlySpan<float> pixels, Action<int, ReadOnlySpan<float>>? onHiddenState = null)
    {
        int tokens = Config.NumPositions, n = tokens * Config.HiddenSize;
        var hidden = new float[n];
        var embedded = new float[n];
        embeddings.Forward(embedded, pixels);
        LayerNorm.Forward(hidden, embedded, preLnWeight, preLnBias, tokens, Config.HiddenSize, Config.LayerNormEps);
        onHiddenState?.Invoke(0, hidden);
        // ~21 MB for ViT-L/14-336: kept for the next image instead of left to the GC on every encode.
        var scratch = Interlocked.Exchange(ref spareScratch, null) ?? new ClipScratch(Config, tokens);
        for (int i = 0; i < layers.Length; i++)
        {
            layers[i].Forward(hidden, tokens, scratch);
            onHiddenState?.Invoke(i + 1, hidden);
        }
        spareScratch = scratch;
        return hidden;
    }
}
