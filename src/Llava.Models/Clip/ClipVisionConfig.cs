using System.Text.Json;

namespace Llava.Models.Clip;

/// <summary>
/// CLIP vision transformer hyper-parameters (transformers' CLIPVisionConfig). Missing keys take CLIP's
/// defaults, since transformers writes only non-default values in nested configs.
/// </summary>
public sealed record ClipVisionConfig
{
    public int HiddenSize { get; init; } = 768;
    public int IntermediateSize { get; init; } = 3072;
    public int NumLayers { get; init; } = 12;
    public int NumHeads { get; init; } = 12;
    public int ImageSize { get; init; } = 224;
    public int PatchSize { get; init; } = 32;
    public int NumChannels { get; init; } = 3;
    public float LayerNormEps { get; init; } = 1e-5f;
    public string HiddenAct { get; init; } = "quick_gelu";

    public int PatchesPerSide => ImageSize / PatchSize;
    public int NumPatches => PatchesPerSide * PatchesPerSide;
    /// <summary>Patches plus the class token.</summary>
    public int NumPositions => NumPatches + 1;
    public int HeadDim => HiddenSize / NumHeads;

    /// <summary>openai/clip-vit-large-patch14-336, the tower of LLaVA-1.5.</summary>
    public static ClipVisionConfig VitLargePatch14_336 => new()
    {
        HiddenSize = 1024, IntermediateSize = 4096, NumLayers = 24, NumHeads = 16, ImageSize = 336, PatchSize = 14,
    };

    public static ClipVisionConfig FromJson(JsonElement e)
    {
        var d = new ClipVisionConfig();
        return new ClipVisionConfig
        {
            HiddenSize = e.Int("hidden_size", d.HiddenSize),
            IntermediateSize = e.Int("intermediate_size", d.IntermediateSize),
            NumLayers = e.Int("num_hidden_layers", d.NumLayers),
            NumHeads = e.Int("num_attention_heads", d.NumHeads),
            ImageSize = e.Int("image_size", d.ImageSize),
            PatchSize = e.Int("patch_size", d.PatchSize),
            NumChannels = e.Int("num_channels", d.NumChannels),
            LayerNormEps = (float)e.Double("layer_norm_eps", d.LayerNormEps),
            HiddenAct = e.Str("hidden_act") ?? d.HiddenAct,
        };
    }

    /// <summary>Reads a CLIP checkpoint's config.json: a CLIPConfig (with vision_config) or a CLIPVisionConfig.</summary>
    public static ClipVisionConfig FromFile(string path)
    {
        var root = JsonConfig.Load(path);
        return FromJson(root.Obj("vision_config") ?? root);
    }
}
