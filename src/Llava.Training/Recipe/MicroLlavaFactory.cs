using System.Runtime.InteropServices;
using System.Text.Json;
using Llava.Formats.Safetensors;
using Llava.Models.Loading;
using Llava.Tensors;
using Llava.Training.Model;

namespace Llava.Training.Recipe;

/// <summary>What <see cref="MicroLlavaFactory.Create"/> wrote.</summary>
public sealed record MicroLlavaCheckpoint(string ModelDirectory, string VisionDirectory, MicroLlavaConfig Config,
    long Parameters, long ModelBytes, long VisionBytes)
{
    /// <summary>Both safetensors files on disk (headers included).</summary>
    public long TotalBytes => ModelBytes + VisionBytes;
}

/// <summary>
/// Writes a randomly initialised micro LLaVA in the original layout, which <c>LlavaModel.Load</c>, <c>TrainableLlava</c>,
/// <c>LlavaTrainer</c> and <c>ModelExport</c> accept:
/// <code>
/// outputDir/
///   clip-vit-micro/   config.json (CLIPConfig, CLIPVisionModel), model.safetensors (vision_model.*), preprocessor_config.json
///   llava-micro/      config.json (LlavaLlamaForCausalLM: LlamaConfig keys + mm_* keys, mm_vision_tower "clip-vit-micro",
///                     resolved as a sibling), model.safetensors (bf16), tokenizer.model, tokenizer_config.json, special_tokens_map.json
/// </code>
/// Initialisation is transformers' _init_weights: CLIP as CLIPPreTrainedModel (via <see cref="TrainableClipVision"/>);
/// LLaMA and projector Linear/Embedding weights N(0, initializer_range), biases 0, RMSNorm weights 1, the embedding row of
/// pad_token_id (0) zeroed (nn.Embedding padding_idx). Same (config, seed) → same bytes.
/// </summary>
public static class MicroLlavaFactory
{
    public static readonly string[] TokenizerFiles = ["tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"];

    public static MicroLlavaCheckpoint Create(string outputDir, MicroLlavaConfig? config = null, int seed = 0)
    {
        var c = config ?? MicroLlavaConfig.Default;
        c.Validate();
        string tokenizerDir = c.TokenizerDirectory ?? FindBundledTokenizer()
            ?? throw new DirectoryNotFoundException("no tokenizer directory given and tests/fixtures/llava-tiny/original/llava-v1.5-tiny was not found above the working or base directory");
        foreach (var f in TokenizerFiles)
            if (!File.Exists(Path.Combine(tokenizerDir, f))) throw new FileNotFoundException($"{tokenizerDir}: missing {f}");

        string visionDir = Path.Combine(outputDir, c.VisionDirName);
        string modelDir = Path.Combine(outputDir, c.ModelDirName);
        Directory.CreateDirectory(modelDir);

        // Vision tower: CLIP init and Save; optionally re-stored in bf16 (the loaders convert any float dtype).
        var vision = new TrainableClipVision(c.Vision, seed);
        vision.Save(visionDir);
        if (c.VisionBf16)
            SafetensorsWriter.Write(Path.Combine(visionDir, "model.safetensors"),
                vision.Parameters.Select(p => Bf16(p.Name, p.Shape, p.Data)), new Dictionary<string, string> { ["format"] = "pt" });
        PatchVisionDtype(Path.Combine(visionDir, "config.json"), c.VisionBf16 ? "bfloat16" : "float32");

        // LLaMA + projector.
        var rng = new Random(unchecked(seed * 7919 + 17));
        var entries = new List<SafetensorsWriter.Entry>();
        long count = 0;
        void Normal(string name, params int[] shape)
        {
            var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
            FillNormal(data, rng, c.InitializerRange);
            if (name == "model.embed_tokens.weight") Array.Clear(data, 0, shape[1]);   // padding_idx = pad_token_id = 0
            Add(name, shape, data);
        }
        void Const(string name, int n, float value)
        {
            var data = new float[n];
            Array.Fill(data, value);
            Add(name, [n], data);
        }
        void Add(string name, int[] shape, float[] data)
        {
            count += data.Length;
            entries.Add(Bf16(name, shape, data));
        }
        int h = c.TextHidden, qd = c.TextHeads * c.HeadDim, kvd = c.TextKvHeads * c.HeadDim, ff = c.TextIntermediate;
        Normal("model.embed_tokens.weight", c.VocabSize, h);
        for (int l = 0; l < c.TextLayers; l++)
        {
            string p = $"model.layers.{l}.";
            Normal(p + "self_attn.q_proj.weight", qd, h);
            Normal(p + "self_attn.k_proj.weight", kvd, h);
            Normal(p + "self_attn.v_proj.weight", kvd, h);
            Normal(p + "self_attn.o_proj.weight", h, qd);
            Normal(p + "mlp.gate_proj.weight", ff, h);
            Normal(p + "mlp.up_proj.weight", ff, h);
            Normal(p + "mlp.down_proj.weight", h, ff);
            Const(p + "input_layernorm.weight", h, 1f);
            Const(p + "post_attention_layernorm.weight", h, 1f);
        }
        Const("model.norm.weight", h, 1f);
        if (!c.TieWordEmbeddings) Normal("lm_head.weight", c.VocabSize, h);
        for (int i = 0; i < c.ProjectorDepth; i++)
        {
            Normal($"model.mm_projector.{2 * i}.weight", h, i == 0 ? c.VisionHidden : h);
            Const($"model.mm_projector.{2 * i}.bias", h, 0f);
        }
        SafetensorsWriter.Write(Path.Combine(modelDir, "model.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });
        WriteModelConfig(Path.Combine(modelDir, "config.json"), c);
        foreach (var f in TokenizerFiles) File.Copy(Path.Combine(tokenizerDir, f), Path.Combine(modelDir, f), overwrite: true);

        long total = count + vision.Parameters.Sum(p => (long)p.Length);
        if (total != c.TotalParameters) throw new InvalidOperationException($"wrote {total} parameters, the config computes {c.TotalParameters}");
        return new MicroLlavaCheckpoint(modelDir, visionDir, c, total,
            new FileInfo(Path.Combine(modelDir, "model.safetensors")).Length, new FileInfo(Path.Combine(visionDir, "model.safetensors")).Length);
    }

    /// <summary>tests/fixtures/llava-tiny/original/llava-v1.5-tiny above the working directory or the app's base directory (the LLaMA-2 tokenizer, legacy=false).</summary>
    public static string? FindBundledTokenizer()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                string candidate = Path.Combine(d.FullName, "tests", "fixtures", "llava-tiny", "original", "llava-v1.5-tiny");
                if (File.Exists(Path.Combine(candidate, "tokenizer.model"))) return candidate;
            }
        return null;
    }

    static SafetensorsWriter.Entry Bf16(string name, int[] shape, ReadOnlySpan<float> values)
    {
        var bf = new ushort[values.Length];
        for (int i = 0; i < bf.Length; i++) bf[i] = DTypeConvert.F32ToBF16(values[i]);
        return new SafetensorsWriter.Entry(name, DType.BF16, shape.Select(d => (long)d).ToArray(), MemoryMarshal.AsBytes(bf.AsSpan()).ToArray());
    }

    static void FillNormal(Span<float> data, Random rng, double std)
    {
        for (int i = 0; i < data.Length; i += 2)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1)) * std, a = 2 * Math.PI * u2;
            data[i] = (float)(r * Math.Cos(a));
            if (i + 1 < data.Length) data[i + 1] = (float)(r * Math.Sin(a));
        }
    }

    static void PatchVisionDtype(string path, string dtype)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
        node["torch_dtype"] = dtype;
        File.WriteAllText(path, node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    static void WriteModelConfig(string path, MicroLlavaConfig c)
    {
        using var fs = File.Create(path);
        using var w = new Utf8JsonWriter(fs, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteString("_name_or_path", c.ModelDirName);
        w.WriteStartArray("architectures"); w.WriteStringValue("LlavaLlamaForCausalLM"); w.WriteEndArray();
        w.WriteString("model_type", "llava_llama");
        w.WriteNumber("bos_token_id", 1);
        w.WriteNumber("eos_token_id", 2);
        w.WriteNumber("pad_token_id", 0);
        w.WriteString("hidden_act", "silu");
        w.WriteNumber("hidden_size", c.TextHidden);
        w.WriteNumber("intermediate_size", c.TextIntermediate);
        w.WriteNumber("num_hidden_layers", c.TextLayers);
        w.WriteNumber("num_attention_heads", c.TextHeads);
        w.WriteNumber("num_key_value_heads", c.TextKvHeads);
        w.WriteNumber("head_dim", c.HeadDim);
        w.WriteNumber("vocab_size", c.VocabSize);
        w.WriteNumber("max_position_embeddings", c.MaxPositionEmbeddings);
        w.WriteNumber("rms_norm_eps", c.RmsNormEps);
        w.WriteNumber("rope_theta", c.RopeTheta);
        w.WriteNull("rope_scaling");
        w.WriteBoolean("attention_bias", false);
        w.WriteBoolean("mlp_bias", false);
        w.WriteNumber("initializer_range", c.InitializerRange);
        w.WriteNumber("pretraining_tp", 1);
        w.WriteBoolean("tie_word_embeddings", c.TieWordEmbeddings);
        w.WriteString("torch_dtype", "bfloat16");
        w.WriteBoolean("use_cache", true);
        w.WriteNumber("tokenizer_model_max_length", c.MaxPositionEmbeddings);
        w.WriteString("tokenizer_padding_side", "right");
        // LLaVA's multimodal keys (as train.py / builder.py write and read them).
        w.WriteBoolean("use_mm_proj", true);
        w.WriteString("mm_vision_tower", c.VisionDirName);
        w.WriteNumber("mm_hidden_size", c.VisionHidden);
        w.WriteString("mm_projector_type", c.ProjectorType);
        w.WriteNumber("mm_vision_select_layer", c.VisionSelectLayer);
        w.WriteString("mm_vision_select_feature", c.VisionSelectFeature);
        w.WriteString("mm_patch_merge_type", "flat");
        w.WriteBoolean("mm_use_im_start_end", false);
        w.WriteBoolean("mm_use_im_patch_token", false);
        w.WriteNull("mm_projector_lr");
        w.WriteBoolean("freeze_mm_mlp_adapter", false);
        w.WriteBoolean("tune_mm_mlp_adapter", false);
        w.WriteString("image_aspect_ratio", c.ImageAspectRatio);
        w.WriteEndObject();
    }
}
