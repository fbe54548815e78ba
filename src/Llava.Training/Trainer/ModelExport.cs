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

/// <summary>
/// Writes what LLaVA's <c>train()</c> writes at the end of a run, in the original LLaVA layout:
/// stage 1 → the projector (<c>mm_projector.safetensors</c>, keys <c>model.mm_projector.*</c>) and config.json;
/// stage 2 → a full checkpoint (config.json, model.safetensors with every weight, tokenizer files);
/// LoRA → a PEFT adapter (adapter_config.json, adapter_model.safetensors), non_lora_trainables.safetensors and config.json.
/// Also merges a LoRA adapter into its base (LLaVA's scripts/merge_lora_weights.py).
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
        var trained = model.Parameters.Where(p => !p.Name.Contains(".lora_", StringComparison.Ordinal)).ToDictionary(p => p.Name);
        using (var src = CheckpointFiles.OpenDirectory(cfg.ModelDirectory))
        {
            var entries = new List<SafetensorsWriter.Entry>();
            foreach (var name in src.Names)
            {
                if (trained.Remove(name, out var p)) entries.Add(Entry(name, p));
                else entries.Add(Raw(src.Get(name)));
            }
            foreach (var p in trained.Values) entries.Add(Entry(p.Name, p));   // e.g. an untied lm_head of a tied source
            SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });
        }
        var config = UpdatedConfig(model.Frozen, options, tuneMmMlpAdapter: false);
        WriteJson(Path.Combine(dir, "config.json"), config);
        CopyTokenizer(cfg.ModelDirectory, dir);
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
    /// Returns the number of merged matrices.
    /// </summary>
    public static int MergeLora(string adapterDir, string baseDir, string outDir, bool keepBaseDtype = false)
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
        SafetensorsWriter.Write(Path.Combine(outDir, "model.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });
        var cfgPath = File.Exists(Path.Combine(adapterDir, "config.json")) ? Path.Combine(adapterDir, "config.json") : Path.Combine(baseDir, "config.json");
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
}
