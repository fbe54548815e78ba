using Llava.Formats;
using Llava.Models.Clip;
using Llava.Models.Llama;
using Llava.Models.Loading;
using Llava.Text;
using Llava.Vision;

namespace Llava.Models.Llava;

/// <summary>Where the pieces of a LLaVA checkpoint come from, beyond the model directory itself.</summary>
public sealed record LlavaLoadOptions
{
    /// <summary>LLaVA's --model-base: the language model for a projector-only checkpoint (mm_projector.bin).</summary>
    public string? ModelBase { get; init; }
    /// <summary>The CLIP checkpoint directory of an original-layout model (else mm_vision_tower as a local path).</summary>
    public string? VisionTower { get; init; }
    /// <summary>llama.cpp's vision file (clip.* / v.* / mm.* tensors) when the model is a GGUF text model.</summary>
    public string? Mmproj { get; init; }
    /// <summary>LLaVA's --load-8bit / --load-4bit: quantize f16/bf16/f32 weights while loading (8 = Q8_0, 4 = Q4_K).</summary>
    public int? LoadBits { get; init; }
}

/// <summary>
/// A loaded LLaVA: CLIP tower, projector, LLaMA decoder, tokenizer and image processor. Immutable after loading
/// and safe to share between conversations and threads; conversation state lives elsewhere (KV cache, scratch).
/// Weights stay memory-mapped until <see cref="Dispose"/>.
/// </summary>
public sealed partial class LlavaModel : IDisposable
{
    readonly List<ITensorFile> files;

    public LlavaConfig Config { get; }
    public ClipVisionTower Vision { get; }
    public LlavaProjector Projector { get; }
    public LlamaModel Language { get; }
    public LlamaTokenizer Tokenizer { get; }
    public ClipImageProcessor ImageProcessor { get; }
    /// <summary>Weight tensors read, and their total stored bytes, for `llava info` and --verbose.</summary>
    public CheckpointSummary Summary { get; }

    LlavaModel(LlavaConfig config, ClipVisionTower vision, LlavaProjector projector, LlamaModel language,
        LlamaTokenizer tokenizer, ClipImageProcessor processor, List<ITensorFile> files, CheckpointSummary summary)
    {
        Config = config; Vision = vision; Projector = projector; Language = language;
        Tokenizer = tokenizer; ImageProcessor = processor; this.files = files; Summary = summary;
    }

    /// <summary>Loads a checkpoint directory in either layout. <paramref name="progress"/> receives (step, total, what).</summary>
    public static LlavaModel Load(string modelPath, LlavaLoadOptions? options = null, Action<int, int, string>? progress = null)
    {
        options ??= new LlavaLoadOptions();
        if (File.Exists(modelPath) && modelPath.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
            return LoadGguf(modelPath, options, progress);
        if (options.Mmproj is not null)
            throw new ModelFormatException("--mmproj goes with a GGUF text model (--model model.gguf)");
        if (File.Exists(Path.Combine(modelPath, "adapter_config.json")))
            throw new ModelFormatException($"{modelPath}: this is a LoRA adapter; load it with --model-base BASE (merged at load time), or merge it once with `llava merge-lora`");
        var config = LlavaConfig.Load(modelPath, options.VisionTower);
        var files = new List<ITensorFile>();
        try
        {
            progress?.Invoke(0, 4, "reading config");
            return config.Layout == CheckpointLayout.HuggingFace
                ? LoadHuggingFace(config, options, files, progress)
                : LoadOriginal(config, options, files, progress);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    static LlavaModel LoadHuggingFace(LlavaConfig config, LlavaLoadOptions options, List<ITensorFile> files, Action<int, int, string>? progress)
    {
        var weights = CheckpointFiles.OpenDirectory(config.ModelDirectory);
        files.Add(weights);
        // Like LLaVA (bitsandbytes skips the vision tower and mm_projector), --load-Nbit quantizes only the language model.
        var r = new WeightReader(weights);
        var lr = new WeightReader(weights) { Quantizer = Quantizer(options, files) };
        // transformers < 4.52 nests the text model under language_model.model; newer versions under model.language_model.
        bool legacy = r.Has("vision_tower.vision_model.embeddings.class_embedding");
        string visionPrefix = legacy ? "vision_tower.vision_model." : "model.vision_tower.vision_model.";
        string projectorPrefix = legacy ? "multi_modal_projector." : "model.multi_modal_projector.";
        string textPrefix = legacy ? "language_model.model." : "model.language_model.";
        string lmHead = legacy ? "language_model.lm_head.weight" : "lm_head.weight";

        progress?.Invoke(1, 4, "vision tower");
        var vision = new ClipVisionTower(r, visionPrefix, config.Vision, ClipVisionTower.LayersFor(config.Vision, config.VisionFeatureLayer));
        progress?.Invoke(2, 4, "projector");
        var names = Enumerable.Range(1, config.ProjectorDepth).Select(i => $"{projectorPrefix}linear_{i}").ToArray();
        var projector = LlavaProjector.Load(r, names, config.Vision.HiddenSize, config.Text.HiddenSize, config.ProjectorAct);
        progress?.Invoke(3, 4, "language model");
        var language = new LlamaModel(lr, textPrefix, lmHead, config.Text);
        WeightReader.ThrowIfProblems("the llava-hf checkpoint", r, lr);

        var tokenizer = LlamaTokenizer.FromDirectory(config.ModelDirectory);
        var processor = LoadProcessor(config.ModelDirectory, config.Vision);
        progress?.Invoke(4, 4, "ready");
        return new LlavaModel(config, vision, projector, language, tokenizer, processor, files, CheckpointSummary.Of(files, r, lr));
    }

    static LlavaModel LoadOriginal(LlavaConfig config, LlavaLoadOptions options, List<ITensorFile> files, Action<int, int, string>? progress)
    {
        string dir = config.ModelDirectory;
        // LLaVA's stage 1 writes mm_projector.bin; ours writes mm_projector.safetensors.
        string projectorOnlyPath = File.Exists(Path.Combine(dir, "mm_projector.safetensors")) ? Path.Combine(dir, "mm_projector.safetensors") : Path.Combine(dir, "mm_projector.bin");
        bool projectorOnly = !CheckpointFiles.HasWeights(dir) && File.Exists(projectorOnlyPath);
        if (projectorOnly && options.ModelBase is null)
            throw new ModelFormatException($"{dir} holds only a projector ({Path.GetFileName(projectorOnlyPath)}); pass --model-base with the language model it was trained on");

        // The language model: the checkpoint itself, or --model-base for a projector-only checkpoint.
        string lmDir = projectorOnly ? options.ModelBase! : dir;
        var lmWeights = CheckpointFiles.OpenDirectory(lmDir);
        files.Add(lmWeights);
        var lm = new WeightReader(lmWeights) { Quantizer = Quantizer(options, files) };

        progress?.Invoke(1, 4, "vision tower");
        var towerWeights = CheckpointFiles.OpenDirectory(config.VisionTowerPath!);
        files.Add(towerWeights);
        var tower = new WeightReader(towerWeights);
        var vision = new ClipVisionTower(tower, "vision_model.", config.Vision, ClipVisionTower.LayersFor(config.Vision, config.VisionFeatureLayer));
        tower.ThrowIfProblems("the CLIP vision tower");

        progress?.Invoke(2, 4, "projector");
        LlavaProjector projector;
        WeightReader pr;
        if (projectorOnly)
        {
            var projWeights = CheckpointFiles.OpenFile(projectorOnlyPath);
            files.Add(projWeights);
            pr = new WeightReader(projWeights);
            // LLaVA keeps everything after "mm_projector." (get_w in llava_arch.py); keys may carry any prefix.
            string prefix = projWeights.Names.Select(n => n.IndexOf("mm_projector", StringComparison.Ordinal) is int i and >= 0 ? n[..(i + "mm_projector".Length)] : null)
                .FirstOrDefault(p => p != null) ?? "model.mm_projector";
            projector = LlavaProjector.Load(pr, OriginalProjectorNames(config.ProjectorDepth, prefix), config.Vision.HiddenSize, config.Text.HiddenSize, "gelu");
            pr.ThrowIfProblems($"the projector ({Path.GetFileName(projectorOnlyPath)})");
        }
        else
        {
            pr = new WeightReader(lmWeights);
            projector = LlavaProjector.Load(pr, OriginalProjectorNames(config.ProjectorDepth, "model.mm_projector"), config.Vision.HiddenSize, config.Text.HiddenSize, "gelu");
            pr.ThrowIfProblems("the projector");
        }

        progress?.Invoke(3, 4, "language model");
        var language = new LlamaModel(lm, "model.", "lm_head.weight", config.Text);
        lm.ThrowIfProblems("the language model");

        var tokenizer = AddLlavaTokens(LlamaTokenizer.FromDirectory(projectorOnly ? options.ModelBase! : dir), config);
        var processor = LoadProcessor(config.VisionTowerPath!, config.Vision);
        progress?.Invoke(4, 4, "ready");
        return new LlavaModel(config, vision, projector, language, tokenizer, processor, files, CheckpointSummary.Of(files, lm, tower, pr));
    }

    /// <summary>--load-8bit / --load-4bit: a quantizer whose buffers live as long as the model (disposed with its files).</summary>
    static LoadTimeQuantizer? Quantizer(LlavaLoadOptions options, List<ITensorFile> files)
    {
        if (options.LoadBits is not int bits) return null;
        var q = new LoadTimeQuantizer(bits);
        files.Add(new OwnedResource(q));
        return q;
    }

    static string[] OriginalProjectorNames(int depth, string prefix) =>
        depth == 0 ? [] : depth == 1 ? [prefix] : Enumerable.Range(0, depth).Select(i => $"{prefix}.{2 * i}").ToArray();

    /// <summary>LLaVA's builder adds &lt;im_patch&gt; and &lt;im_start&gt;/&lt;im_end&gt; after loading, per config.</summary>
    static LlamaTokenizer AddLlavaTokens(LlamaTokenizer tokenizer, LlavaConfig config)
    {
        if (config.MmUseImPatchToken) tokenizer = tokenizer.WithAddedTokens("<im_patch>");
        if (config.MmUseImStartEnd) tokenizer = tokenizer.WithAddedTokens("<im_start>", "<im_end>");
        return tokenizer;
    }

    static ClipImageProcessor LoadProcessor(string dir, ClipVisionConfig vision)
    {
        var path = Path.Combine(dir, "preprocessor_config.json");
        // Without a preprocessor_config.json, CLIP's own settings at the tower's resolution apply.
        var cfg = File.Exists(path) ? ClipImageProcessorConfig.Load(path)
            : new ClipImageProcessorConfig { SizeShortestEdge = vision.ImageSize, CropHeight = vision.ImageSize, CropWidth = vision.ImageSize };
        return new ClipImageProcessor(cfg);
    }

    /// <summary>Image → pixel_values (3, S, S), honouring the checkpoint's aspect mode unless overridden.</summary>
    public float[] PreprocessImage(RgbImage image, ImageAspectMode? aspect = null)
    {
        var mode = (aspect ?? Config.ImageAspect) == ImageAspectMode.Pad ? PreprocessMode.Pad : PreprocessMode.Default;
        var pixels = ImageProcessor.Preprocess(image, mode, out int height, out int width);
        int s = Config.Vision.ImageSize;
        if (height != s || width != s)
            throw new ModelFormatException($"the image processor produces {height}x{width} pixels but the vision tower expects {s}x{s}; check preprocessor_config.json");
        return pixels;
    }

    /// <summary>CLIP hidden state selected by the config, CLS dropped or kept: (N, Cv).</summary>
    public float[] SelectVisionFeatures(ReadOnlySpan<float> pixels, Action<int, ReadOnlySpan<float>>? onHiddenState = null)
    {
        var hidden = Vision.Forward(pixels, onHiddenState);
        int c = Config.Vision.HiddenSize;
        return Config.FeatureSelect == FeatureSelect.Patch ? hidden.AsSpan(c).ToArray() : hidden;
    }

    /// <summary>pixel_values → image features (N, Ct) that replace the image placeholder.</summary>
    public float[] EncodeImage(ReadOnlySpan<float> pixels)
    {
        var features = SelectVisionFeatures(pixels);
        return Projector.Forward(features, Config.NumImageTokens);
    }

    /// <summary>Bytes of weights held in memory by load-time quantization (0 when weights are only mapped).</summary>
    public long QuantizedBytes => files.OfType<OwnedResource>().Select(o => o.Resource).OfType<LoadTimeQuantizer>().Sum(q => q.QuantizedBytes);

    public void Dispose()
    {
        foreach (var f in files) f.Dispose();
        files.Clear();
    }

    /// <summary>Lets non-file resources (quantized buffers) share the model's lifetime list.</summary>
    sealed class OwnedResource(IDisposable resource) : ITensorFile
    {
        public IDisposable Resource => resource;
        public string Source => "";
        public IReadOnlyCollection<string> Names => [];
        public bool TryGet(string name, out StoredTensor tensor) { tensor = null!; return false; }
        public void Dispose() => resource.Dispose();
    }
}
