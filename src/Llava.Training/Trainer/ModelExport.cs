using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Llava.Formats;
using Llava.Formats.Safetensors;
using Llava.Models.Llava;
using Llava.Models.Loading;
using Llava.Tensors;
using Llava.Training.Model;
using Llava.Training.Optim;

namespace Llava.Training.Trainer;

/// <summary>On-disk layout of a saved full checkpoint.</summary>
public enum CheckpointSaveFormat
{
    /// <summary>LLaVA's own layout (LlavaLlamaForCausalLM, mm_* config keys, CLIP tower referenced by path), as LLaVA saves.</summary>
    Original,
    /// <summary>Hugging Face llava-hf (LlavaForConditionalGeneration, CLIP tower inside, &lt;image&gt; token 32000): see <see cref="ModelExport.SaveHuggingFace"/>.</summary>
    HuggingFace,
}

/// <summary>
/// Writes what LLaVA's <c>train()</c> writes at the end of a run, in the original LLaVA layout:
/// stage 1 → the projector (<c>mm_projector.safetensors</c>, keys <c>model.mm_projector.*</c>) and config.json;
/// stage 2 → a full checkpoint (config.json, model.safetensors with every weight, tokenizer files);
/// LoRA → a PEFT adapter (adapter_config.json, adapter_model.safetensors), non_lora_trainables.safetensors and config.json.
/// Also merges a LoRA adapter into its base (LLaVA's scripts/merge_lora_weights.py), and writes full checkpoints in
/// the Hugging Face llava-hf layout (<see cref="SaveHuggingFace"/>, <see cref="ConvertToHuggingFace"/>).
/// </summary>
public static class ModelExport
{
    /// <summary>The PEFT key prefix of a LoRA-wrapped causal LM (PeftModel → LoraModel → LlavaLlamaForCausalLM).</summary>
    public const string PeftPrefix = "base_model.model.";

    static readonly string[] TokenizerFiles =
        ["tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "generation_config.json"];

    static SafetensorsWriter.Entry Entry(string name, Parameter p) => SafetensorsWriter.F32(name, p.Shape.Select(d => (long)d).ToArray(), p.Data);

    static bool IsProjector(string name) => name.Contains("mm_projector", StringComparison.Ordinal);

    /// <summary>The source config.json with the mm_* keys LLaVA's train() sets (model.config.* assignments), the vision tower as an absolute local path.</summary>
    public static JsonObject UpdatedConfig(LlavaModel frozen, TrainerOptions? options, bool tuneMmMlpAdapter)
    {
        var cfg = frozen.Config;
        var path = Path.Combine(cfg.ModelDirectory, "config.json");
        var root = (JsonNode.Parse(File.ReadAllText(path)) as JsonObject) ?? throw new ModelFormatException($"{path}: not a JSON object");
        root["mm_vision_tower"] = Path.GetFullPath(cfg.VisionTowerPath ?? throw new ModelFormatException("the model has no vision tower path"));
        root["mm_hidden_size"] = cfg.Vision.HiddenSize;
        root["mm_projector_type"] = cfg.ProjectorType;
        root["mm_vision_select_layer"] = cfg.VisionFeatureLayer;
        root["mm_vision_select_feature"] = cfg.FeatureSelect == FeatureSelect.ClsPatch ? "cls_patch" : "patch";
        root["mm_use_im_start_end"] = cfg.MmUseImStartEnd;
        root["mm_use_im_patch_token"] = cfg.MmUseImPatchToken;
        root["use_mm_proj"] = true;
        root["tune_mm_mlp_adapter"] = tuneMmMlpAdapter;
        if (options is not null)
        {
            root["image_aspect_ratio"] = (options.ImageAspectRatio ?? DefaultAspect(options.Mode)) == Data.ImageAspectRatio.Pad ? "pad" : "square";
            root["tokenizer_model_max_length"] = options.ModelMaxLength;
            root["tokenizer_padding_side"] = "right";
            root["mm_projector_lr"] = options.MmProjectorLr is double lr ? JsonValue.Create(lr) : null;
            root["freeze_mm_mlp_adapter"] = false;
        }
        return root;
    }

    internal static Data.ImageAspectRatio DefaultAspect(TrainingMode mode) => mode == TrainingMode.Pretrain ? Data.ImageAspectRatio.Square : Data.ImageAspectRatio.Pad;

    static void WriteJson(string path, JsonNode node) =>
        File.WriteAllText(path, node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    /// <summary>Stage 1: mm_projector.safetensors (keys model.mm_projector.*, f32) and config.json (LLaVA writes mm_projector.bin + config.json).</summary>
    public static void SaveProjector(TrainableLlava model, string dir, TrainerOptions? options)
    {
        Directory.CreateDirectory(dir);
        var entries = model.Parameters.Where(p => IsProjector(p.Name)).Select(p => Entry(p.Name, p)).ToList();
        SafetensorsWriter.Write(Path.Combine(dir, "mm_projector.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });
        WriteJson(Path.Combine(dir, "config.json"), UpdatedConfig(model.Frozen, options, tuneMmMlpAdapter: true));
    }

    /// <summary>
    /// Stage 2: a full original-layout checkpoint: every tensor of the source weights (frozen ones byte for byte in their
    /// stored dtype, trained ones in f32), config.json updated, tokenizer files copied.
    /// </summary>
    public static void SaveFullCheckpoint(TrainableLlava model, string dir, TrainerOptions? options)
    {
        var cfg = model.Frozen.Config;
        if (cfg.Layout != CheckpointLayout.Original) throw new NotSupportedException("saving a full checkpoint needs an original-layout source model");
        Directory.CreateDirectory(dir);
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), FullCheckpointEntries(model), new Dictionary<string, string> { ["format"] = "pt" });
        var config = UpdatedConfig(model.Frozen, options, tuneMmMlpAdapter: false);
        WriteJson(Path.Combine(dir, "config.json"), config);
        CopyTokenizer(cfg.ModelDirectory, dir);
    }

    /// <summary>Every tensor of the model's source checkpoint (original names), trained ones replaced by their f32 values.</summary>
    static List<SafetensorsWriter.Entry> FullCheckpointEntries(TrainableLlava model)
    {
        var trained = model.Parameters.Where(p => !p.Name.Contains(".lora_", StringComparison.Ordinal)).ToDictionary(p => p.Name);
        using var src = CheckpointFiles.OpenDirectory(model.Frozen.Config.ModelDirectory);
        var entries = new List<SafetensorsWriter.Entry>();
        foreach (var name in src.Names)
        {
            if (trained.Remove(name, out var p)) entries.Add(Entry(name, p));
            else entries.Add(Raw(src.Get(name)));
        }
        foreach (var p in trained.Values) entries.Add(Entry(p.Name, p));   // e.g. an untied lm_head of a tied source
        return entries;
    }

    static SafetensorsWriter.Entry Raw(StoredTensor t)
    {
        if (t.Quant is not null) throw new NotSupportedException($"{t.Name}: quantized tensors cannot be written to safetensors");
        return new SafetensorsWriter.Entry(t.Name, t.DType, t.Shape, t.Bytes.ToArray());
    }

    public static void CopyTokenizer(string from, string to)
    {
        foreach (var f in TokenizerFiles)
        {
            var s = Path.Combine(from, f);
            if (File.Exists(s)) File.Copy(s, Path.Combine(to, f), overwrite: true);
        }
    }

    /// <summary>
    /// LoRA: PEFT's adapter_config.json + adapter_model.safetensors (base_model.model.model.layers.N.….lora_A.weight),
    /// LLaVA's non_lora_trainables (projector, base_model.model.model.mm_projector.*) and config.json.
    /// </summary>
    public static void SaveLora(TrainableLlava model, string dir, LoraOptions lora, string baseModelPath, TrainerOptions? options)
    {
        Directory.CreateDirectory(dir);
        var adapters = model.NamedLoraAdapters().ToList();
        if (adapters.Count == 0) throw new InvalidOperationException("the model has no LoRA adapters");
        var entries = new List<SafetensorsWriter.Entry>();
        foreach (var (_, a) in adapters)
        {
            entries.Add(Entry(PeftPrefix + a.A.Name, a.A));
            entries.Add(Entry(PeftPrefix + a.B.Name, a.B));
        }
        SafetensorsWriter.Write(Path.Combine(dir, "adapter_model.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });
        var nonLora = model.Parameters.Where(p => !p.Name.Contains(".lora_", StringComparison.Ordinal)).Select(p => Entry(PeftPrefix + p.Name, p)).ToList();
        SafetensorsWriter.Write(Path.Combine(dir, "non_lora_trainables.safetensors"), nonLora, new Dictionary<string, string> { ["format"] = "pt" });
        var adapterConfig = new JsonObject
        {
            ["alpha_pattern"] = new JsonObject(),
            ["auto_mapping"] = null,
            ["base_model_name_or_path"] = Path.GetFullPath(baseModelPath),
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["layers_pattern"] = null,
            ["layers_to_transform"] = null,
            ["lora_alpha"] = lora.Alpha,
            ["lora_dropout"] = lora.Dropout,
            ["modules_to_save"] = null,
            ["peft_type"] = "LORA",
            ["r"] = lora.Rank,
            ["rank_pattern"] = new JsonObject(),
            ["revision"] = null,
            ["target_modules"] = new JsonArray(LoraOptions.Targets.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray()),
            ["task_type"] = "CAUSAL_LM",
        };
        WriteJson(Path.Combine(dir, "adapter_config.json"), adapterConfig);
        WriteJson(Path.Combine(dir, "config.json"), UpdatedConfig(model.Frozen, options, tuneMmMlpAdapter: false));
    }

    /// <summary>r, lora_alpha, lora_dropout of an adapter directory.</summary>
    public static LoraOptions ReadAdapterConfig(string adapterDir)
    {
        var path = Path.Combine(adapterDir, "adapter_config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"{adapterDir}: no adapter_config.json (not a LoRA adapter directory)", path);
        var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        string type = root["peft_type"]?.GetValue<string>() ?? "";
        if (type != "LORA") throw new ModelFormatException($"{path}: peft_type '{type}' is not LORA");
        int r = root["r"]!.GetValue<int>();
        float alpha = root["lora_alpha"]!.GetValue<float>();
        float dropout = root["lora_dropout"]?.GetValue<float>() ?? 0;
        return new LoraOptions(r, alpha, dropout);
    }

    /// <summary>Loads an adapter directory's LoRA weights and non-LoRA trainables into a LoRA-mode model (same r).</summary>
    public static void LoadLoraInto(TrainableLlava model, string adapterDir)
    {
        using var adapter = SafetensorsFile.Open(Path.Combine(adapterDir, "adapter_model.safetensors"));
        foreach (var (_, a) in model.NamedLoraAdapters())
        {
            CopyInto(a.A, adapter.Get(PeftPrefix + a.A.Name));
            CopyInto(a.B, adapter.Get(PeftPrefix + a.B.Name));
        }
        var nonLoraPath = Path.Combine(adapterDir, "non_lora_trainables.safetensors");
        if (File.Exists(nonLoraPath))
        {
            using var nl = SafetensorsFile.Open(nonLoraPath);
            var byName = model.Parameters.ToDictionary(p => p.Name);
            foreach (var key in nl.Names)
                if (byName.TryGetValue(StripPeft(key), out var p)) CopyInto(p, nl.Get(key));
        }
    }

    internal static void CopyInto(Parameter p, StoredTensor t)
    {
        if (t.ElementCount != p.Length) throw new ModelFormatException($"{t.Name}: shape {t.ShapeString} does not match {p}");
        t.ReadFloat32(0, p.Data);
    }

    /// <summary>LLaVA's key cleanup for non_lora_trainables: drop "base_model." then "model." if every key has it.</summary>
    static string StripPeft(string key) => key.StartsWith(PeftPrefix, StringComparison.Ordinal) ? key[PeftPrefix.Length..] : key;

    /// <summary>
    /// LLaVA's merge_lora_weights.py: base weights with W += (lora_alpha / r)·B·A on every adapted linear, the
    /// non-LoRA trainables (projector) from the adapter, config.json from the adapter dir (else the base), tokenizer
    /// from the base. Merged tensors are written in f32, or in the base tensor's dtype with <paramref name="keepBaseDtype"/>.
    /// With <paramref name="format"/> = <see cref="CheckpointSaveFormat.HuggingFace"/> the merged model is written as a
    /// llava-hf directory instead (every tensor in <paramref name="hfDType"/>, the CLIP tower of the adapter's config
    /// or <paramref name="visionTower"/> included; see <see cref="SaveHuggingFace"/>).
    /// Returns the number of merged matrices.
    /// </summary>
    public static int MergeLora(string adapterDir, string baseDir, string outDir, bool keepBaseDtype = false,
        CheckpointSaveFormat format = CheckpointSaveFormat.Original, DType hfDType = DType.BF16, string? visionTower = null)
    {
        var lora = ReadAdapterConfig(adapterDir);
        float scaling = lora.Alpha / lora.Rank;
        Directory.CreateDirectory(outDir);
        if (Path.GetFullPath(outDir).TrimEnd('/') == Path.GetFullPath(baseDir).TrimEnd('/'))
            throw new ArgumentException("--save-model-path must differ from --model-base");
        using var adapter = SafetensorsFile.Open(Path.Combine(adapterDir, "adapter_model.safetensors"));
        var nonLoraPath = Path.Combine(adapterDir, "non_lora_trainables.safetensors");
        using var nonLora = File.Exists(nonLoraPath) ? SafetensorsFile.Open(nonLoraPath) : null;
        var nonLoraByName = nonLora?.Names.ToDictionary(StripPeft, k => k) ?? new Dictionary<string, string>();
        int merged = 0;
        var entries = new List<SafetensorsWriter.Entry>();
        var usedAdapters = new HashSet<string>();
        using (var src = CheckpointFiles.OpenDirectory(baseDir))
        {
            foreach (var name in src.Names)
            {
                var t = src.Get(name);
                if (nonLoraByName.Remove(name, out var key)) { entries.Add(F32Entry(name, nonLora!.Get(key))); continue; }
                string stem = name.EndsWith(".weight", StringComparison.Ordinal) ? name[..^".weight".Length] : name;
                string aKey = PeftPrefix + stem + ".lora_A.weight", bKey = PeftPrefix + stem + ".lora_B.weight";
                if (!adapter.TryGet(aKey, out var a)) { entries.Add(Raw(t)); continue; }
                var b = adapter.Get(bKey);
                usedAdapters.Add(aKey); usedAdapters.Add(bKey);
                int outF = (int)t.Shape[0], inF = (int)t.Shape[1], r = (int)a.Shape[0];
                if (r != lora.Rank || a.Shape[1] != inF || b.Shape[0] != outF || b.Shape[1] != r)
                    throw new ModelFormatException($"{aKey}/{bKey}: shapes {a.ShapeString}/{b.ShapeString} do not fit {name} {t.ShapeString} with r={lora.Rank}");
                var w = t.ToFloat32();
                var av = a.ToFloat32();
                var bv = b.ToFloat32();
                // W[o, i] += s · Σ_k B[o, k] · A[k, i], as PEFT's merge (delta = B @ A * scaling, added in place).
                Parallel.For(0, outF, o =>
                {
                    var row = w.AsSpan(o * inF, inF);
                    var delta = new float[inF];
                    for (int k = 0; k < r; k++)
                    {
                        float bk = bv[o * r + k];
                        if (bk == 0) continue;
                        System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(av.AsSpan(k * inF, inF), bk, delta, delta);
                    }
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(delta, scaling, row, row);
                });
                entries.Add(keepBaseDtype ? Cast(name, t.DType, t.Shape, w) : SafetensorsWriter.F32(name, t.Shape, w));
                merged++;
            }
            var unused = adapter.Names.Where(n => !usedAdapters.Contains(n)).ToList();
            if (unused.Count > 0) throw new ModelFormatException($"{adapterDir}: adapter tensors with no base weight: {string.Join(", ", unused.Take(5))}{(unused.Count > 5 ? ", ..." : "")}");
            foreach (var (name, key) in nonLoraByName) entries.Add(F32Entry(name, nonLora!.Get(key)));
        }
        var cfgPath = File.Exists(Path.Combine(adapterDir, "config.json")) ? Path.Combine(adapterDir, "config.json") : Path.Combine(baseDir, "config.json");
        if (format == CheckpointSaveFormat.HuggingFace)
        {
            // The adapter's config.json (written by the trainer) names the tower by absolute path; else the base's.
            var cfg = LlavaConfig.Load(Path.GetDirectoryName(cfgPath)!, visionTower);
            var source = JsonNode.Parse(File.ReadAllText(cfgPath))!.AsObject();
            string tokenizerDir = File.Exists(Path.Combine(adapterDir, "tokenizer.model")) ? adapterDir : baseDir;
            WriteHuggingFace(outDir, cfg, source, entries, tokenizerDir, hfDType);
            return merged;
        }
        SafetensorsWriter.Write(Path.Combine(outDir, "model.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });
        var config = JsonNode.Parse(File.ReadAllText(cfgPath))!.AsObject();
        // Keep the tower resolvable from the new directory.
        if (config["mm_vision_tower"]?.GetValue<string>() is string tower && !Path.IsPathRooted(tower))
        {
            foreach (var d in new[] { adapterDir, baseDir, Path.GetDirectoryName(Path.GetFullPath(baseDir))! })
                if (Directory.Exists(Path.Combine(d, tower))) { config["mm_vision_tower"] = Path.GetFullPath(Path.Combine(d, tower)); break; }
        }
        WriteJson(Path.Combine(outDir, "config.json"), config);
        CopyTokenizer(baseDir, outDir);
        CopyTokenizer(adapterDir, outDir);
        return merged;
    }

    static SafetensorsWriter.Entry F32Entry(string name, StoredTensor t) => SafetensorsWriter.F32(name, t.Shape, t.ToFloat32());

    static SafetensorsWriter.Entry Cast(string name, DType dtype, long[] shape, float[] values)
    {
        switch (dtype)
        {
            case DType.BF16:
                var bf = new ushort[values.Length];
                for (int i = 0; i < bf.Length; i++) bf[i] = DTypeConvert.F32ToBF16(values[i]);
                return new SafetensorsWriter.Entry(name, DType.BF16, shape, MemoryMarshal.AsBytes(bf.AsSpan()).ToArray());
            case DType.F16:
                var h = new Half[values.Length];
                for (int i = 0; i < h.Length; i++) h[i] = (Half)values[i];
                return new SafetensorsWriter.Entry(name, DType.F16, shape, MemoryMarshal.AsBytes(h.AsSpan()).ToArray());
            default:
                return SafetensorsWriter.F32(name, shape, values);
        }
    }

    // ---------------------------------------------------------------- llava-hf layout

    /// <summary>The transformers version whose llava-hf conventions the export follows (that of the fixtures).</summary>
    public const string HfTransformersVersion = "4.45.1";
    /// <summary>llava-hf pads the vocabulary (base + &lt;image&gt; + &lt;pad&gt;) to a multiple of this.</summary>
    public const int HfVocabMultiple = 64;
    public const string HfImageToken = "<image>";
    public const string HfPadToken = "<pad>";

    /// <summary>
    /// A trained model (finetune/pretrain mode: language model + projector, trained tensors replacing the source's) and the
    /// CLIP tower it was trained with (a separate original-layout CLIP directory) as one Hugging Face llava-hf directory,
    /// loadable by <see cref="LlavaModel.Load"/> and by transformers' <c>LlavaForConditionalGeneration</c>/<c>AutoProcessor</c>.
    /// Conventions follow transformers' convert_llava_weights_to_hf.py (and tests/fixtures/llava-tiny/hf):
    /// <list type="bullet">
    /// <item>tensors language_model.model.*, language_model.lm_head.weight, multi_modal_projector.linear_{1,2}.*,
    /// vision_tower.vision_model.* (the 4.45 names; newer transformers map them on load), all in <paramref name="dtype"/>
    /// (BF16, F16 or F32; bf16 → f32 is exact);</item>
    /// <item><c>&lt;image&gt;</c> = id V and <c>&lt;pad&gt;</c> = V + 1 (V = the source vocabulary, 32000 for LLaVA-1.5) are
    /// added and the vocabulary padded to a multiple of 64 (32064). The new rows of embed_tokens and lm_head are the mean
    /// of the existing rows: the mean of the distribution the conversion script samples them from (deterministic here).
    /// The image row is never looked up (image features replace it);</item>
    /// <item>tie_word_embeddings (no lm_head tensor in the source): no lm_head tensor is written (save_pretrained drops
    /// tied weights too) and text_config.tie_word_embeddings = true, which both loaders honour;</item>
    /// <item>config.json: model_type llava, text_config (llama, from the source config minus LLaVA's mm_* keys),
    /// vision_config (clip_vision_model, every size spelled out), image_token_index, vision_feature_layer,
    /// vision_feature_select_strategy default (patch) / full (cls_patch), projector_hidden_act gelu, torch_dtype;</item>
    /// <item>tokenizer.model + tokenizer_config.json / special_tokens_map.json / added_tokens.json with the added tokens
    /// (a tokenizer.json is patched, a chat_template in the source tokenizer_config.json is kept), generation_config.json,
    /// preprocessor_config.json (the tower's CLIPImageProcessor, else CLIP's at the tower's image size) and
    /// processor_config.json (LlavaProcessor).</item>
    /// </list>
    /// LLaVA-1.5's <c>image_aspect_ratio: pad</c> has no llava-hf equivalent (the processor center-crops), as with the
    /// official llava-hf conversions. Only the mlp2x_gelu projector exists in llava-hf; LoRA models must be merged first
    /// (<see cref="MergeLora"/> with <see cref="CheckpointSaveFormat.HuggingFace"/>).
    /// </summary>
    public static void SaveHuggingFace(TrainableLlava model, string dir, DType dtype = DType.BF16, TrainerOptions? options = null)
    {
        var cfg = model.Frozen.Config;
        if (cfg.Layout != CheckpointLayout.Original) throw new NotSupportedException("saving a llava-hf checkpoint needs an original-layout source model");
        if (model.Mode == TrainingMode.Lora)
            throw new NotSupportedException("a LoRA model is saved as an adapter; merge it into a llava-hf checkpoint with `llava merge-lora --save-format hf`");
        WriteHuggingFace(dir, cfg, UpdatedConfig(model.Frozen, options, tuneMmMlpAdapter: false), FullCheckpointEntries(model), cfg.ModelDirectory, dtype);
    }

    /// <summary>
    /// An original-layout LLaVA checkpoint directory (full weights, safetensors or .bin) and its CLIP tower
    /// (<paramref name="visionTower"/>, default: the config's mm_vision_tower as a local path) → a llava-hf directory,
    /// as <see cref="SaveHuggingFace"/> writes it.
    /// </summary>
    public static void ConvertToHuggingFace(string modelDir, string outDir, string? visionTower = null, DType dtype = DType.BF16)
    {
        var cfg = LlavaConfig.Load(modelDir, visionTower);
        if (cfg.Layout != CheckpointLayout.Original) throw new NotSupportedException($"{modelDir} is not an original-layout LLaVA checkpoint ({cfg.Layout})");
        if (!CheckpointFiles.HasWeights(modelDir)) throw new ModelFormatException($"{modelDir}: no full weights (a projector-only checkpoint cannot be converted alone)");
        if (Path.GetFullPath(outDir).TrimEnd('/') == Path.GetFullPath(modelDir).TrimEnd('/')) throw new ArgumentException("the output directory must differ from the source");
        var source = JsonNode.Parse(File.ReadAllText(Path.Combine(modelDir, "config.json")))!.AsObject();
        List<SafetensorsWriter.Entry> entries;
        using (var src = CheckpointFiles.OpenDirectory(modelDir)) entries = src.Names.Select(n => Raw(src.Get(n))).ToList();
        WriteHuggingFace(outDir, cfg, source, entries, modelDir, dtype);
    }

    /// <summary>config.json torch_dtype of a safetensors dtype.</summary>
    public static string TorchDTypeName(DType dtype) => dtype switch
    {
        DType.BF16 => "bfloat16",
        DType.F16 => "float16",
        DType.F32 => "float32",
        _ => throw new ArgumentException($"dtype {dtype}: a checkpoint is saved as BF16, F16 or F32"),
    };

    /// <summary>"bf16" | "f16"/"fp16" | "f32"/"fp32" (CLI spelling) → dtype.</summary>
    public static DType ParseSaveDType(string s) => s.ToLowerInvariant() switch
    {
        "bf16" or "bfloat16" => DType.BF16,
        "f16" or "fp16" or "float16" => DType.F16,
        "f32" or "fp32" or "float32" => DType.F32,
        _ => throw new ArgumentException($"dtype '{s}': use bf16, f16 or f32"),
    };

    /// <summary>The llava-hf tensor name of an original-layout tensor; null for tensors llava-hf has no place for (and does not need).</summary>
    public static string? HuggingFaceName(string name)
    {
        if (name.StartsWith("model.mm_projector.", StringComparison.Ordinal))
        {
            var parts = name.Split('.');
            if (parts.Length != 4 || !int.TryParse(parts[2], out int i) || i is not (0 or 2))
                throw new NotSupportedException($"{name}: llava-hf has only the mlp2x_gelu projector (model.mm_projector.0 / .2)");
            return $"multi_modal_projector.linear_{i / 2 + 1}.{parts[3]}";
        }
        if (name == "lm_head.weight") return "language_model.lm_head.weight";
        // A tower saved inside the LLaVA checkpoint: llava-hf takes the tower from its own CLIP checkpoint instead.
        if (name.StartsWith("model.vision_tower.", StringComparison.Ordinal)) return null;
        // Non-persistent buffers that old LLaMA checkpoints carry.
        if (name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)) return null;
        if (name.StartsWith("model.", StringComparison.Ordinal)) return "language_model." + name;
        throw new ModelFormatException($"{name}: not a LLaVA language-model or projector tensor (cannot place it in the llava-hf layout)");
    }

    static void WriteHuggingFace(string dir, LlavaConfig cfg, JsonObject sourceConfig, List<SafetensorsWriter.Entry> original, string tokenizerDir, DType dtype)
    {
        string torchDtype = TorchDTypeName(dtype);
        if (cfg.ProjectorType != "mlp2x_gelu")
            throw new NotSupportedException($"projector '{cfg.ProjectorType}': llava-hf's LlavaMultiModalProjector is mlp2x_gelu only");
        if (cfg.MmUseImStartEnd) throw new NotSupportedException("mm_use_im_start_end: llava-hf has no <im_start>/<im_end> tokens");
        if (cfg.VisionTowerPath is null) throw new ModelFormatException("the model has no vision tower path");
        Directory.CreateDirectory(dir);

        int vocab = cfg.Text.VocabSize, h = cfg.Text.HiddenSize;
        int imageId = vocab, padId = vocab + 1;
        int hfVocab = (vocab + 2 + HfVocabMultiple - 1) / HfVocabMultiple * HfVocabMultiple;
        var entries = new List<SafetensorsWriter.Entry>();
        bool hasHead = false;
        foreach (var e in original)
        {
            string? name = HuggingFaceName(e.Name);
            if (name is null) continue;
            if (e.Name is "model.embed_tokens.weight" or "lm_head.weight")
            {
                if (e.Shape.Length != 2 || e.Shape[0] != vocab || e.Shape[1] != h)
                    throw new ModelFormatException($"{e.Name}: shape [{string.Join(", ", e.Shape)}], expected [{vocab}, {h}]");
                entries.Add(PadRowsWithMean(name, e, hfVocab, dtype));
                hasHead |= e.Name == "lm_head.weight";
            }
            else entries.Add(Convert(name, e, dtype));
        }
        if (!entries.Any(e => e.Name == "language_model.model.embed_tokens.weight")) throw new ModelFormatException("the checkpoint has no model.embed_tokens.weight");
        // No lm_head tensor = tied to the embeddings (the trainable model keeps a tie tied); HF drops tied weights on save too.
        bool tied = !hasHead;

        int towerTensors = 0;
        using (var tower = CheckpointFiles.OpenDirectory(cfg.VisionTowerPath))
            foreach (var name in tower.Names.Where(n => n.StartsWith("vision_model.", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
            {
                entries.Add(Convert("vision_tower." + name, Raw(tower.Get(name)), dtype));
                towerTensors++;
            }
        if (towerTensors == 0) throw new ModelFormatException($"{cfg.VisionTowerPath}: no vision_model.* tensors (not a CLIP vision checkpoint)");
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });

        WriteJson(Path.Combine(dir, "config.json"), Sorted(HuggingFaceConfig(cfg, sourceConfig, hfVocab, imageId, padId, tied, torchDtype)));
        WriteHuggingFaceTokenizer(tokenizerDir, dir, imageId, padId, cfg);
        WriteJson(Path.Combine(dir, "preprocessor_config.json"), Sorted(HuggingFaceImageProcessor(cfg)));
        WriteJson(Path.Combine(dir, "processor_config.json"), new JsonObject
        {
            ["image_token"] = HfImageToken,
            ["num_additional_image_tokens"] = 1,   // the CLS token the vision tower adds (newer processors count it)
            ["patch_size"] = cfg.Vision.PatchSize,
            ["processor_class"] = "LlavaProcessor",
            ["vision_feature_select_strategy"] = cfg.FeatureSelect == FeatureSelect.ClsPatch ? "full" : "default",
        });
    }

    static JsonObject HuggingFaceConfig(LlavaConfig cfg, JsonObject source, int hfVocab, int imageId, int padId, bool tied, string torchDtype)
    {
        // text_config: the source's LLaMA keys (rope_scaling, attention_bias, … survive), LLaVA's own keys dropped.
        var text = new JsonObject();
        foreach (var (key, value) in source)
        {
            if (key.StartsWith("mm_", StringComparison.Ordinal) || key.StartsWith("_", StringComparison.Ordinal) || LlavaOnlyKeys.Contains(key)) continue;
            text[key] = value?.DeepClone();
        }
        var t = cfg.Text;
        text["model_type"] = "llama";
        text["vocab_size"] = hfVocab;
        text["hidden_size"] = t.HiddenSize;
        text["intermediate_size"] = t.IntermediateSize;
        text["num_hidden_layers"] = t.NumLayers;
        text["num_attention_heads"] = t.NumHeads;
        text["num_key_value_heads"] = t.NumKvHeads;
        text["head_dim"] = t.HeadDim;
        text["max_position_embeddings"] = t.MaxPositionEmbeddings;
        if (!text.ContainsKey("rms_norm_eps")) text["rms_norm_eps"] = Exact(t.RmsNormEps);
        if (!text.ContainsKey("rope_theta")) text["rope_theta"] = t.RopeTheta;
        text["hidden_act"] = t.HiddenAct;
        text["pad_token_id"] = padId;
        text["tie_word_embeddings"] = tied;
        text["torch_dtype"] = torchDtype;

        var vision = new JsonObject();
        var towerConfigPath = Path.Combine(cfg.VisionTowerPath!, "config.json");
        if (File.Exists(towerConfigPath))
        {
            var towerRoot = JsonNode.Parse(File.ReadAllText(towerConfigPath))!.AsObject();
            var vc = towerRoot["vision_config"] as JsonObject ?? towerRoot;
            foreach (var (key, value) in vc)
                if (!key.StartsWith("_", StringComparison.Ordinal) && key is not ("architectures" or "transformers_version" or "torch_dtype"))
                    vision[key] = value?.DeepClone();
            if (!vision.ContainsKey("projection_dim") && towerRoot["projection_dim"] is JsonNode pd) vision["projection_dim"] = pd.DeepClone();
        }
        var v = cfg.Vision;
        vision["model_type"] = "clip_vision_model";
        vision["hidden_size"] = v.HiddenSize;
        vision["intermediate_size"] = v.IntermediateSize;
        vision["num_hidden_layers"] = v.NumLayers;
        vision["num_attention_heads"] = v.NumHeads;
        vision["image_size"] = v.ImageSize;
        vision["patch_size"] = v.PatchSize;
        vision["num_channels"] = v.NumChannels;
        vision["hidden_act"] = v.HiddenAct;
        if (!vision.ContainsKey("layer_norm_eps")) vision["layer_norm_eps"] = Exact(v.LayerNormEps);

        return new JsonObject
        {
            ["architectures"] = new JsonArray("LlavaForConditionalGeneration"),
            ["ignore_index"] = -100,
            ["image_seq_length"] = cfg.NumImageTokens,
            ["image_token_index"] = imageId,
            ["model_type"] = "llava",
            ["pad_token_id"] = padId,
            ["projector_hidden_act"] = cfg.ProjectorAct,
            ["text_config"] = text,
            ["tie_word_embeddings"] = tied,
            ["torch_dtype"] = torchDtype,
            ["transformers_version"] = HfTransformersVersion,
            ["vision_config"] = vision,
            ["vision_feature_layer"] = cfg.VisionFeatureLayer,
            ["vision_feature_select_strategy"] = cfg.FeatureSelect == FeatureSelect.ClsPatch ? "full" : "default",
        };
    }

    /// <summary>Keys of an original LLaVA config.json that are not LlamaConfig's (mm_* and _* are dropped too).</summary>
    static readonly HashSet<string> LlavaOnlyKeys = new(StringComparer.Ordinal)
    {
        "architectures", "model_type", "transformers_version", "torch_dtype", "use_mm_proj", "tune_mm_mlp_adapter", "freeze_mm_mlp_adapter",
        "image_aspect_ratio", "image_grid_pinpoints", "tokenizer_model_max_length", "tokenizer_padding_side", "unfreeze_mm_vision_tower",
        "vision_tower", "mm_vision_tower", "pad_token_id", "vocab_size", "tie_word_embeddings",
    };

    /// <summary>A float config value written with its shortest round-trip spelling (1e-05, not 9.99999974737875E-06).</summary>
    static double Exact(float f) => double.Parse(f.ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);

    static JsonObject HuggingFaceImageProcessor(LlavaConfig cfg)
    {
        int s = cfg.Vision.ImageSize;
        var path = Path.Combine(cfg.VisionTowerPath!, "preprocessor_config.json");
        JsonObject p;
        if (File.Exists(path)) p = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        else
            p = new JsonObject
            {
                ["crop_size"] = new JsonObject { ["height"] = s, ["width"] = s },
                ["do_center_crop"] = true,
                ["do_convert_rgb"] = true,
                ["do_normalize"] = true,
                ["do_rescale"] = true,
                ["do_resize"] = true,
                ["image_mean"] = new JsonArray(Vision.ClipImageProcessorConfig.OpenAiClipMean.Select(x => (JsonNode)x).ToArray()),
                ["image_processor_type"] = "CLIPImageProcessor",
                ["image_std"] = new JsonArray(Vision.ClipImageProcessorConfig.OpenAiClipStd.Select(x => (JsonNode)x).ToArray()),
                ["resample"] = 3,
                ["rescale_factor"] = 1.0 / 255,
                ["size"] = new JsonObject { ["shortest_edge"] = s },
            };
        p["processor_class"] = "LlavaProcessor";
        return p;
    }

    static JsonObject SpecialToken(string content) => new()
    {
        ["content"] = content, ["lstrip"] = false, ["normalized"] = false, ["rstrip"] = false, ["single_word"] = false,
    };

    /// <summary>tokenizer.model and the JSON files with &lt;image&gt; and &lt;pad&gt; added as llava-hf has them.</summary>
    static void WriteHuggingFaceTokenizer(string from, string to, int imageId, int padId, LlavaConfig cfg)
    {
        var model = Path.Combine(from, "tokenizer.model");
        if (!File.Exists(model)) throw new ModelFormatException($"{from}: no tokenizer.model");
        File.Copy(model, Path.Combine(to, "tokenizer.model"), overwrite: true);

        JsonObject Read(string name) => File.Exists(Path.Combine(from, name)) ? JsonNode.Parse(File.ReadAllText(Path.Combine(from, name)))!.AsObject() : new JsonObject();

        var tc = Read("tokenizer_config.json");
        var decoder = tc["added_tokens_decoder"] as JsonObject ?? new JsonObject();
        foreach (var (id, content) in new[] { (imageId, HfImageToken), (padId, HfPadToken) })
        {
            if (decoder[id.ToString()] is JsonObject existing && existing["content"]?.GetValue<string>() != content)
                throw new NotSupportedException($"{from}: added token id {id} is already '{existing["content"]}', cannot place {content} there");
            var t = SpecialToken(content);
            t["special"] = true;
            decoder[id.ToString()] = t;
        }
        tc["added_tokens_decoder"] = decoder;
        var extra = tc["additional_special_tokens"] as JsonArray ?? new JsonArray();
        if (!extra.Any(x => x?.GetValue<string>() == HfImageToken)) extra.Add(HfImageToken);
        tc["additional_special_tokens"] = extra;
        tc["pad_token"] = HfPadToken;
        tc["padding_side"] = "left";   // llava-hf batches generation left-padded
        tc["processor_class"] = "LlavaProcessor";
        tc.Remove("tokenizer_file");
        if (!tc.ContainsKey("model_max_length")) tc["model_max_length"] = cfg.ContextLength;
        WriteJson(Path.Combine(to, "tokenizer_config.json"), Sorted(tc));

        var map = Read("special_tokens_map.json");
        map["pad_token"] = SpecialToken(HfPadToken);
        var mapExtra = map["additional_special_tokens"] as JsonArray ?? new JsonArray();
        if (!mapExtra.Any(x => (x is JsonObject o ? o["content"]?.GetValue<string>() : x?.GetValue<string>()) == HfImageToken)) mapExtra.Add(SpecialToken(HfImageToken));
        map["additional_special_tokens"] = mapExtra;
        WriteJson(Path.Combine(to, "special_tokens_map.json"), Sorted(map));

        var added = Read("added_tokens.json");
        added[HfImageToken] = imageId;
        added[HfPadToken] = padId;
        WriteJson(Path.Combine(to, "added_tokens.json"), added);

        // A fast tokenizer.json wins over tokenizer.model in transformers: give it the same added tokens.
        var fastPath = Path.Combine(from, "tokenizer.json");
        if (File.Exists(fastPath))
        {
            var fast = JsonNode.Parse(File.ReadAllText(fastPath))!.AsObject();
            var list = fast["added_tokens"] as JsonArray ?? new JsonArray();
            foreach (var (id, content) in new[] { (imageId, HfImageToken), (padId, HfPadToken) })
            {
                if (list.Any(x => x?["id"]?.GetValue<int>() == id)) continue;
                var t = SpecialToken(content);
                t["special"] = true;
                t["id"] = id;
                list.Add(t);
            }
            fast["added_tokens"] = list;
            File.WriteAllText(Path.Combine(to, "tokenizer.json"), fast.ToJsonString());
        }

        var gen = Read("generation_config.json");
        if (gen.Count == 0)
        {
            gen["_from_model_config"] = true;
            gen["bos_token_id"] = cfg.Text.BosTokenId;
            gen["eos_token_id"] = cfg.Text.EosTokenIds.Length == 1 ? cfg.Text.EosTokenIds[0] : new JsonArray(cfg.Text.EosTokenIds.Select(x => (JsonNode)x).ToArray());
        }
        gen["pad_token_id"] = padId;
        gen["transformers_version"] = HfTransformersVersion;
        WriteJson(Path.Combine(to, "generation_config.json"), Sorted(gen));
    }

    /// <summary>Keys in ordinal order, recursively (transformers writes configs with sort_keys=True).</summary>
    static JsonObject Sorted(JsonObject o)
    {
        var r = new JsonObject();
        foreach (var (k, v) in o.OrderBy(p => p.Key, StringComparer.Ordinal))
            r[k] = v is JsonObject child ? Sorted(child) : v?.DeepClone();
        return r;
    }

    static float[] ToFloat32(SafetensorsWriter.Entry e)
    {
        var values = new float[e.Data.Length / e.DType.Size()];
        switch (e.DType)
        {
            case DType.F32: MemoryMarshal.Cast<byte, float>(e.Data).CopyTo(values); break;
            case DType.BF16: DTypeConvert.BF16ToF32(MemoryMarshal.Cast<byte, ushort>(e.Data), values); break;
            case DType.F16: DTypeConvert.F16ToF32(MemoryMarshal.Cast<byte, Half>(e.Data), values); break;
            default: throw new ModelFormatException($"{e.Name}: dtype {e.DType} is not a float weight");
        }
        return values;
    }

    /// <summary>Renamed, in <paramref name="dtype"/> (bytes kept as they are when already of that dtype).</summary>
    static SafetensorsWriter.Entry Convert(string name, SafetensorsWriter.Entry e, DType dtype) =>
        e.DType == dtype ? e with { Name = name } : Cast(name, dtype, e.Shape, ToFloat32(e));

    /// <summary>A (V, H) table grown to (rows, H): existing rows unchanged, new rows = the mean of the existing rows.</summary>
    static SafetensorsWriter.Entry PadRowsWithMean(string name, SafetensorsWriter.Entry e, int rows, DType dtype)
    {
        int v = (int)e.Shape[0], h = (int)e.Shape[1];
        var src = ToFloat32(e);
        var mean = new double[h];
        for (int r = 0; r < v; r++)
            for (int c = 0; c < h; c++) mean[c] += src[(long)r * h + c];
        var dst = new float[(long)rows * h];
        src.CopyTo(dst, 0);
        for (int r = v; r < rows; r++)
            for (int c = 0; c < h; c++) dst[(long)r * h + c] = (float)(mean[c] / v);
        return Cast(name, dtype, [rows, h], dst);
    }
}
