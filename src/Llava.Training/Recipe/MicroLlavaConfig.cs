using Llava.Models.Clip;

namespace Llava.Training.Recipe;

/// <summary>
/// Shape of the micro LLaVA the recipe trains from scratch: a small CLIP ViT, an mlp2x_gelu projector and a small LLaMA
/// with the real LLaMA-2 vocabulary (32000). Defaults: ViT 128×3 (4 heads, MLP 512) on 112-px images in 14-px patches
/// (8×8 = 64 image tokens, read at the last layer), LLaMA 256×4 (4 heads, SwiGLU 688), tied embeddings:
/// 0.679M vision + 0.099M projector + 11.356M language (8.192M of it the tied table) = 12.13M parameters,
/// 24.27 MB (23.1 MiB) in bf16.
/// </summary>
public sealed record MicroLlavaConfig
{
    // Vision tower (CLIPVisionConfig).
    public int VisionHidden { get; init; } = 128;
    public int VisionLayers { get; init; } = 3;
    public int VisionHeads { get; init; } = 4;
    public int VisionIntermediate { get; init; } = 512;
    public int ImageSize { get; init; } = 112;
    public int PatchSize { get; init; } = 14;
    public string VisionHiddenAct { get; init; } = "quick_gelu";

    // Language model (LlamaConfig).
    public int TextHidden { get; init; } = 256;
    public int TextLayers { get; init; } = 4;
    public int TextHeads { get; init; } = 4;
    public int TextKvHeads { get; init; } = 4;
    public int TextIntermediate { get; init; } = 688;
    public int VocabSize { get; init; } = 32000;
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public double RopeTheta { get; init; } = 10000;
    public double RmsNormEps { get; init; } = 1e-5;
    /// <summary>lm_head shares embed_tokens (stored once, no lm_head.weight tensor). Untied doubles the 32000×H table.</summary>
    public bool TieWordEmbeddings { get; init; } = true;

    // LLaVA multimodal keys.
    public string ProjectorType { get; init; } = "mlp2x_gelu";
    /// <summary>LLaVA-1.5 reads CLIP's penultimate layer (−2) because CLIP's last layer serves its contrastive head; this
    /// tower is pretrained for dense features read at its last layer, so it reads −1 and carries no unused block.</summary>
    public int VisionSelectLayer { get; init; } = -1;
    /// <summary>patch: the 64 patch tokens go to the language model, as in LLaVA-1.5. cls_patch (with the CLS token,
    /// pretrained on scene-level facts, see <see cref="VisionPretrainOptions.GlobalWeight"/>) was tried and scored
    /// lower (61.6% against 67.8% held-out); it also cannot go to GGUF, whose llava graph drops the CLS token.</summary>
    public string VisionSelectFeature { get; init; } = "patch";
    public string ImageAspectRatio { get; init; } = "pad";

    /// <summary>HF initializer_range: std of every Linear / Embedding weight of the LLaMA and projector.</summary>
    public double InitializerRange { get; init; } = 0.02;
    /// <summary>Store the CLIP tower in bf16 too (else f32 as <c>TrainableClipVision.Save</c> writes it).</summary>
    public bool VisionBf16 { get; init; } = true;

    /// <summary>Directory names inside the factory's output directory.</summary>
    public string ModelDirName { get; init; } = "llava-micro";
    public string VisionDirName { get; init; } = "clip-vit-micro";
    /// <summary>Where tokenizer.model, tokenizer_config.json, special_tokens_map.json come from (null: the bundled fixture, found by walking up).</summary>
    public string? TokenizerDirectory { get; init; }

    public static MicroLlavaConfig Default => new();

    public ClipVisionConfig Vision => new()
    {
        HiddenSize = VisionHidden, IntermediateSize = VisionIntermediate, NumLayers = VisionLayers, NumHeads = VisionHeads,
        ImageSize = ImageSize, PatchSize = PatchSize, NumChannels = 3, HiddenAct = VisionHiddenAct,
    };

    public int HeadDim => TextHidden / TextHeads;
    public int NumImageTokens => (ImageSize / PatchSize) * (ImageSize / PatchSize) + (VisionSelectFeature == "cls_patch" ? 1 : 0);
    public int ProjectorDepth => int.Parse(ProjectorType.AsSpan(3, ProjectorType.Length - 3 - "x_gelu".Length));

    public long VisionParameters
    {
        get
        {
            long h = VisionHidden, f = VisionIntermediate, p = PatchSize, n = (ImageSize / PatchSize) * (ImageSize / PatchSize) + 1;
            long layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 4 * h;
            return h + h * 3 * p * p + n * h + 2 * h + VisionLayers * layer + 2 * h;
        }
    }

    public long ProjectorParameters
    {
        get
        {
            long v = VisionHidden, t = TextHidden;
            return (v * t + t) + (ProjectorDepth - 1) * (t * t + t);
        }
    }

    public long TextLayerParameters
    {
        get
        {
            long h = TextHidden, qd = TextHeads * HeadDim, kvd = TextKvHeads * HeadDim, f = TextIntermediate;
            return TextLayers * (h * qd + 2 * h * kvd + qd * h + 3 * h * f + 2 * h);
        }
    }

    public long EmbeddingParameters => (long)VocabSize * TextHidden * (TieWordEmbeddings ? 1 : 2);

    public long TextParameters => EmbeddingParameters + TextLayerParameters + TextHidden;

    public long TotalParameters => VisionParameters + ProjectorParameters + TextParameters;

    /// <summary>Bytes of all weights at 2 bytes each (the bf16 checkpoint / llava-hf export, headers excluded).</summary>
    public long Bf16Bytes => 2 * TotalParameters;

    public void Validate()
    {
        if (TextHidden % TextHeads != 0) throw new ArgumentException($"text hidden {TextHidden} is not a multiple of {TextHeads} heads");
        if (TextHeads % TextKvHeads != 0) throw new ArgumentException($"{TextHeads} heads are not a multiple of {TextKvHeads} kv heads");
        if (VisionHidden % VisionHeads != 0) throw new ArgumentException($"vision hidden {VisionHidden} is not a multiple of {VisionHeads} heads");
        if (ImageSize % PatchSize != 0) throw new ArgumentException($"image size {ImageSize} is not a multiple of patch size {PatchSize}");
        if (VisionSelectFeature is not ("patch" or "cls_patch")) throw new ArgumentException($"mm_vision_select_feature '{VisionSelectFeature}'");
        if (!(ProjectorType.StartsWith("mlp") && ProjectorType.EndsWith("x_gelu"))) throw new ArgumentException($"projector '{ProjectorType}': the factory writes mlpNx_gelu");
        int sel = VisionSelectLayer < 0 ? VisionLayers + 1 + VisionSelectLayer : VisionSelectLayer;
        if (sel < 0 || sel > VisionLayers) throw new ArgumentException($"mm_vision_select_layer {VisionSelectLayer} is outside 0..{VisionLayers}");
    }
}
