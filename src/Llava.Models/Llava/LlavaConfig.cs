using System.Text.Json;
using Llava.Formats;
using Llava.Models.Clip;
using Llava.Models.Llama;

namespace Llava.Models.Llava;

/// <summary>Which on-disk convention a LLaVA checkpoint follows.</summary>
public enum CheckpointLayout
{
    /// <summary>Hugging Face <c>llava-hf</c>: LlavaForConditionalGeneration with the CLIP tower inside.</summary>
    HuggingFace,
    /// <summary>The original LLaVA release: LlavaLlamaForCausalLM with <c>mm_*</c> keys and a separate CLIP checkpoint.</summary>
    Original,
    /// <summary>llama.cpp's pair: a GGUF text model and an mmproj GGUF (clip.* / v.* / mm.*).</summary>
    Gguf,
}

/// <summary>Which vision tokens feed the projector.</summary>
public enum FeatureSelect
{
    /// <summary>HF "default" / LLaVA "patch": drop the CLS token.</summary>
    Patch,
    /// <summary>HF "full" / LLaVA "cls_patch": keep it.</summary>
    ClsPatch,
}

/// <summary>How a non-square image is made square before the CLIP processor.</summary>
public enum ImageAspectMode
{
    /// <summary>Resize the shortest edge and center-crop (CLIPImageProcessor as is).</summary>
    Original,
    /// <summary>LLaVA's <c>expand2square</c> with the mean colour, then the processor (LLaVA-1.5's setting).</summary>
    Pad,
}

/// <summary>Everything needed to build a LLaVA model, read from either checkpoint layout.</summary>
public sealed record LlavaConfig
{
    public required CheckpointLayout Layout { get; init; }
    public required string ModelDirectory { get; init; }
    /// <summary>The checkpoint's name as LLaVA derives it (last path segment), used to pick a template.</summary>
    public required string ModelName { get; init; }
    public required ClipVisionConfig Vision { get; init; }
    public required LlamaConfig Text { get; init; }
    /// <summary>"linear", "identity" or "mlp{N}x_gelu".</summary>
    public required string ProjectorType { get; init; }
    /// <summary>Activation between projector layers ("gelu" = exact erf GELU).</summary>
    public string ProjectorAct { get; init; } = "gelu";
    /// <summary>Index into the CLIP hidden states (entry 0 = embeddings after pre_layrnorm); negative counts from the end.</summary>
    public int VisionFeatureLayer { get; init; } = -2;
    public FeatureSelect FeatureSelect { get; init; } = FeatureSelect.Patch;
    /// <summary>The id that stands for an image in input_ids: 32000 in llava-hf, −200 (LLaVA's IMAGE_TOKEN_INDEX) in the original layout.</summary>
    public int ImageTokenIndex { get; init; }
    public bool MmUseImStartEnd { get; init; }
    public bool MmUseImPatchToken { get; init; }
    public ImageAspectMode ImageAspect { get; init; }
    /// <summary>Original layout: the CLIP checkpoint directory (resolved), or null for HF.</summary>
    public string? VisionTowerPath { get; init; }
    /// <summary>Context length the model was trained for (LLaVA: max_sequence_length or 2048).</summary>
    public int ContextLength { get; init; }

    /// <summary>LLaVA's IMAGE_TOKEN_INDEX.</summary>
    public const int OriginalImageTokenIndex = -200;

    /// <summary>Number of projector linear layers and whether GELU sits between them.</summary>
    public int ProjectorDepth => ProjectorType switch
    {
        "linear" => 1,
        "identity" => 0,
        _ when ProjectorType.StartsWith("mlp") && ProjectorType.EndsWith("x_gelu")
               && int.TryParse(ProjectorType.AsSpan(3, ProjectorType.Length - 3 - "x_gelu".Length), out int n) && n >= 1 => n,
        _ => throw new ModelFormatException($"projector type '{ProjectorType}' is not supported (linear, identity, mlpNx_gelu)"),
    };

    public int NumImageTokens => Vision.NumPatches + (FeatureSelect == FeatureSelect.ClsPatch ? 1 : 0);

    /// <summary>Reads <c>config.json</c> of a checkpoint directory and works out its layout.</summary>
    /// <param name="visionTower">Overrides where the original layout's CLIP tower lives.</param>
    public static LlavaConfig Load(string modelDirectory, string? visionTower = null)
    {
        var configPath = Path.Combine(modelDirectory, "config.json");
        if (!File.Exists(configPath)) throw new ModelFormatException($"{modelDirectory}: no config.json (is this a model directory?)");
        var root = JsonConfig.Load(configPath);
        string name = ModelNameFromPath(modelDirectory);
        if (root.Obj("text_config") is { } || root.Obj("vision_config") is { })
            return LoadHuggingFace(root, modelDirectory, name);
        if (root.Str("mm_vision_tower") is not null || root.Str("mm_projector_type") is not null || root.Bool("use_mm_proj", false))
            return LoadOriginal(root, modelDirectory, name, visionTower);
        throw new ModelFormatException($"{configPath}: not a LLaVA config (no vision_config/text_config and no mm_vision_tower); model_type={root.Str("model_type") ?? "?"}");
    }

    /// <summary>LLaVA's get_model_name_from_path: last segment, or "parent_checkpoint-N".</summary>
    public static string ModelNameFromPath(string path)
    {
        var parts = Path.GetFullPath(path).TrimEnd('/', '\\').Split('/', '\\');
        var last = parts[^1];
        return last.StartsWith("checkpoint-") && parts.Length > 1 ? parts[^2] + "_" + last : last;
    }

    static LlavaConfig LoadHuggingFace(JsonElement root, string dir, string name)
    {
        var text = LlamaConfig.FromJson(root.Obj("text_config") ?? throw new ModelFormatException($"{dir}/config.json: missing text_config"));
        var vision = ClipVisionConfig.FromJson(root.Obj("vision_config") ?? throw new ModelFormatException($"{dir}/config.json: missing vision_config"));
        string strategy = root.Str("vision_feature_select_strategy") ?? "default";
        if (strategy is not ("default" or "full")) throw new ModelFormatException($"vision_feature_select_strategy '{strategy}' is not supported (default, full)");
        if (root.TryGetProperty("vision_feature_layer", out var vfl) && vfl.ValueKind == JsonValueKind.Array)
            throw new ModelFormatException("a list of vision_feature_layer values (multi-layer features) is not supported");
        return new LlavaConfig
        {
            Layout = CheckpointLayout.HuggingFace,
            ModelDirectory = dir,
            ModelName = name,
            Vision = vision,
            Text = text,
            ProjectorType = "mlp2x_gelu",
            ProjectorAct = root.Str("projector_hidden_act") ?? "gelu",
            VisionFeatureLayer = root.Int("vision_feature_layer", -2),
            FeatureSelect = strategy == "full" ? FeatureSelect.ClsPatch : FeatureSelect.Patch,
            ImageTokenIndex = root.IntOrNull("image_token_index") ?? root.IntOrNull("image_token_id") ?? 32000,
            ImageAspect = ImageAspectMode.Original,
            ContextLength = text.MaxPositionEmbeddings,
        };
    }

    static LlavaConfig LoadOriginal(JsonElement root, string dir, string name, string? visionTowerOverride)
    {
        var text = LlamaConfig.FromJson(root);
        string select = root.Str("mm_vision_select_feature") ?? "patch";
        if (select is not ("patch" or "cls_patch")) throw new ModelFormatException($"mm_vision_select_feature '{select}' is not supported (patch, cls_patch)");
        string aspect = root.Str("image_aspect_ratio") ?? "square";
        if (aspect == "anyres") throw new ModelFormatException($"{dir}: image_aspect_ratio 'anyres' (LLaVA-1.6) is not supported yet; use --image-aspect-ratio pad|original to override");
        string tower = ResolveVisionTower(dir, root.Str("mm_vision_tower") ?? root.Str("vision_tower"), visionTowerOverride);
        var visionConfigPath = Path.Combine(tower, "config.json");
        if (!File.Exists(visionConfigPath)) throw new ModelFormatException($"vision tower {tower}: no config.json");
        var vision = ClipVisionConfig.FromFile(visionConfigPath);
        int mmHidden = root.Int("mm_hidden_size", vision.HiddenSize);
        if (mmHidden != vision.HiddenSize)
            throw new ModelFormatException($"{dir}: mm_hidden_size {mmHidden} does not match the vision tower's hidden size {vision.HiddenSize} ({tower})");
        return new LlavaConfig
        {
            Layout = CheckpointLayout.Original,
            ModelDirectory = dir,
            ModelName = name,
            Vision = vision,
            Text = text,
            ProjectorType = root.Str("mm_projector_type") ?? "linear",
            ProjectorAct = "gelu",
            VisionFeatureLayer = root.Int("mm_vision_select_layer", -2),
            FeatureSelect = select == "cls_patch" ? FeatureSelect.ClsPatch : FeatureSelect.Patch,
            ImageTokenIndex = OriginalImageTokenIndex,
            MmUseImStartEnd = root.Bool("mm_use_im_start_end", false),
            // LLaVA's builder treats a missing key as True.
            MmUseImPatchToken = root.Bool("mm_use_im_patch_token", true),
            ImageAspect = aspect == "pad" ? ImageAspectMode.Pad : ImageAspectMode.Original,
            VisionTowerPath = tower,
            ContextLength = root.IntOrNull("max_sequence_length") ?? 2048,
        };
    }

    /// <summary>
    /// The original layout names its CLIP tower by hub id (e.g. openai/clip-vit-large-patch14-336). We never download:
    /// --vision-tower wins; otherwise the name is tried as a local path, relative to the model directory, its parent,
    /// and the working directory.
    /// </summary>
    static string ResolveVisionTower(string modelDir, string? configured, string? overridePath)
    {
        if (overridePath is not null)
        {
            if (!Directory.Exists(overridePath)) throw new ModelFormatException($"--vision-tower {overridePath}: directory not found");
            return overridePath;
        }
        if (string.IsNullOrEmpty(configured))
            throw new ModelFormatException($"{modelDir}: config has no mm_vision_tower; pass --vision-tower PATH (a CLIP checkpoint directory)");
        var candidates = new List<string> { configured };
        var parent = Path.GetDirectoryName(Path.GetFullPath(modelDir)) ?? ".";
        if (!Path.IsPathRooted(configured))
        {
            candidates.Add(Path.Combine(modelDir, configured));
            candidates.Add(Path.Combine(parent, configured));
            candidates.Add(Path.Combine(parent, Path.GetFileName(configured)));
        }
        foreach (var c in candidates)
            if (Directory.Exists(c) && File.Exists(Path.Combine(c, "config.json"))) return c;
        throw new ModelFormatException(
            $"vision tower '{configured}' (mm_vision_tower in {modelDir}/config.json) was not found locally " +
            $"(looked in: {string.Join(", ", candidates.Distinct())}). Download the CLIP checkpoint and pass --vision-tower PATH.");
    }
}
