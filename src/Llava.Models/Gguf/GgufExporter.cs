using Llava.Formats;
using Llava.Formats.Gguf;
using Llava.Models.Llava;
using Llava.Models.Loading;
using Llava.Tensors;
using Llava.Text;
using Llava.Vision;

namespace Llava.Models.Gguf;

/// <summary>
/// Exports a LLaVA-1.5 checkpoint (llava-hf or original layout) to the pair of GGUF files llama.cpp uses:
/// the LLaMA text model (<c>general.architecture = llama</c>) and the vision projector
/// (<c>mmproj</c>, <c>clip.projector_type = mlp</c>) for llama.cpp's <c>tools/mtmd</c>.
/// Names, keys, q/k row permutation and vocabulary padding follow llama.cpp's converters
/// (<c>convert_hf_to_gguf.py</c> and the legacy <c>convert_image_encoder_to_gguf.py</c>).
/// The text model can be quantized directly (Q8_0 … Q6_K and the Q4_K_S / Q4_K_M / Q5_K_M mixes): per-tensor types
/// follow llama-quantize (<see cref="LlamaQuantRules"/>) and the bytes are ggml's reference quantizer's, so the file
/// equals <c>llama-quantize</c> run on our F32 export. The mmproj stays F16 (or F32/BF16), as llama.cpp's LLaVA files.
/// </summary>
public static class GgufExporter
{
    /// <summary>
    /// Writes <c>{name}-{type}.gguf</c> and <c>mmproj-{name}-{mmproj type}.gguf</c> into <paramref name="outputDirectory"/>,
    /// streaming tensor by tensor (the checkpoint stays memory-mapped; at most one chunk of rows is converted at a time).
    /// </summary>
    public static GgufExportResult Export(string modelDirectory, string outputDirectory, GgufExportOptions? options = null)
    {
        options ??= new GgufExportOptions();
        _ = options.ResolvedMmprojType;   // refuse a quantized mmproj before writing anything
        Directory.CreateDirectory(outputDirectory);
        var config = LlavaConfig.Load(modelDirectory, options.VisionTower);
        var (text, mmproj) = OutputPaths(config.ModelName, outputDirectory, options);
        var t = ExportTextModel(modelDirectory, text, options);
        var m = ExportMmproj(modelDirectory, mmproj, options);
        return new GgufExportResult(t, m);
    }

    /// <summary>The file names <see cref="Export"/> writes for a model called <paramref name="modelName"/>.</summary>
    public static (string TextModel, string Mmproj) OutputPaths(string modelName, string outputDirectory, GgufExportOptions options) =>
        (Path.Combine(outputDirectory, $"{modelName}-{options.OutputType.Name()}.gguf"),
         Path.Combine(outputDirectory, $"mmproj-{modelName}-{options.ResolvedMmprojType.Name()}.gguf"));

    /// <summary>The LLaMA language model with its tokenizer, as llama.cpp loads it.</summary>
    public static GgufFileReport ExportTextModel(string modelDirectory, string outputPath, GgufExportOptions? options = null)
    {
        options ??= new GgufExportOptions();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var config = LlavaConfig.Load(modelDirectory, options.VisionTower);
        RequireFullCheckpoint(config);
        var t = config.Text;
        using var weights = CheckpointFiles.OpenDirectory(modelDirectory);
        string prefix, lmHead;
        if (config.Layout == CheckpointLayout.HuggingFace)
        {
            bool legacy = weights.Contains("language_model.model.embed_tokens.weight");
            prefix = legacy ? "language_model.model." : "model.language_model.";
            lmHead = legacy ? "language_model.lm_head.weight" : "lm_head.weight";
        }
        else
        {
            prefix = "model.";
            lmHead = "lm_head.weight";
        }
        var tokenizer = LlamaTokenizer.FromDirectory(modelDirectory);
        var vocab = LlamaGgufVocabulary.Build(tokenizer, t.VocabSize);
        // Tied embeddings: llama.cpp falls back to token_embd when there is no output tensor (and then quantizes
        // token_embd as it would the output).
        bool writeOutput = !t.TieWordEmbeddings || weights.Contains(lmHead);
        var shape = new LlamaQuantShape(t.NumLayers, t.NumHeads, t.NumKvHeads, TiedEmbeddings: !writeOutput);

        var w = new GgufWriter();
        w.AddString("general.architecture", "llama")
         .AddString("general.type", "model")
         .AddString("general.name", config.ModelName)
         .AddUInt32("general.file_type", options.OutputType.FileType())
         .AddUInt32("general.quantization_version", 2)
         .AddUInt32("llama.vocab_size", (uint)t.VocabSize)
         .AddUInt32("llama.context_length", (uint)t.MaxPositionEmbeddings)
         .AddUInt32("llama.embedding_length", (uint)t.HiddenSize)
         .AddUInt32("llama.block_count", (uint)t.NumLayers)
         .AddUInt32("llama.feed_forward_length", (uint)t.IntermediateSize)
         .AddUInt32("llama.rope.dimension_count", (uint)t.HeadDim)
         .AddUInt32("llama.attention.head_count", (uint)t.NumHeads)
         .AddUInt32("llama.attention.head_count_kv", (uint)t.NumKvHeads)
         .AddFloat32("llama.attention.layer_norm_rms_epsilon", t.RmsNormEps)
         .AddFloat32("llama.rope.freq_base", (float)t.RopeTheta);
        if (t.HeadDim * t.NumHeads != t.HiddenSize)
            w.AddUInt32("llama.attention.key_length", (uint)t.HeadDim).AddUInt32("llama.attention.value_length", (uint)t.HeadDim);
        if (t.RopeScaling is { } rs)
        {
            if (rs.Type != "linear")
                throw new ModelFormatException($"{modelDirectory}: rope_scaling '{rs.Type}' cannot be exported to GGUF yet (linear only)");
            w.AddString("llama.rope.scaling.type", "linear").AddFloat32("llama.rope.scaling.factor", (float)rs.Factor);
        }
        w.AddString("tokenizer.ggml.model", "llama")
         .AddString("tokenizer.ggml.pre", "default")
         .AddStringArray("tokenizer.ggml.tokens", vocab.Tokens)
         .AddFloat32Array("tokenizer.ggml.scores", vocab.Scores)
         .AddInt32Array("tokenizer.ggml.token_type", vocab.Types)
         .AddUInt32("tokenizer.ggml.bos_token_id", (uint)tokenizer.BosId)
         .AddUInt32("tokenizer.ggml.eos_token_id", (uint)tokenizer.EosId)
         .AddUInt32("tokenizer.ggml.unknown_token_id", (uint)tokenizer.UnkId);
        if (tokenizer.PadId is int pad) w.AddUInt32("tokenizer.ggml.padding_token_id", (uint)pad);
        w.AddBool("tokenizer.ggml.add_bos_token", tokenizer.Options.AddBosToken)
         .AddBool("tokenizer.ggml.add_eos_token", tokenizer.Options.AddEosToken);

        var problems = new List<string>();
        var tracker = new ExportTracker(options.Progress) { Path = outputPath };
        var plan = new TensorPlan(weights, w, problems, tracker);
        void Matrix(string name, string source, long rows, long cols, Func<long, long>? rowMap = null)
        {
            var type = LlamaQuantRules.Choose(options.OutputType, options.Pure, name, [cols, rows], shape, out var fallback);
            plan.Matrix(name, source, rows, cols, type, rowMap, fallback);
        }
        int h = t.HiddenSize, ff = t.IntermediateSize, hd = t.HeadDim;
        Matrix("token_embd.weight", prefix + "embed_tokens.weight", t.VocabSize, h);
        for (int i = 0; i < t.NumLayers; i++)
        {
            string p = $"{prefix}layers.{i}.", b = $"blk.{i}.";
            plan.Vector(b + "attn_norm.weight", p + "input_layernorm.weight", h);
            Matrix(b + "attn_q.weight", p + "self_attn.q_proj.weight", t.NumHeads * hd, h, GgufTensorEncoder.RopePermutation(t.NumHeads, hd));
            Matrix(b + "attn_k.weight", p + "self_attn.k_proj.weight", t.NumKvHeads * hd, h, GgufTensorEncoder.RopePermutation(t.NumKvHeads, hd));
            Matrix(b + "attn_v.weight", p + "self_attn.v_proj.weight", t.NumKvHeads * hd, h);
            Matrix(b + "attn_output.weight", p + "self_attn.o_proj.weight", h, t.NumHeads * hd);
            plan.Vector(b + "ffn_norm.weight", p + "post_attention_layernorm.weight", h);
            Matrix(b + "ffn_gate.weight", p + "mlp.gate_proj.weight", ff, h);
            Matrix(b + "ffn_up.weight", p + "mlp.up_proj.weight", ff, h);
            Matrix(b + "ffn_down.weight", p + "mlp.down_proj.weight", h, ff);
        }
        plan.Vector("output_norm.weight", prefix + "norm.weight", h);
        if (writeOutput) Matrix("output.weight", lmHead, t.VocabSize, h);
        if (problems.Count > 0)
            throw new ModelFormatException($"{modelDirectory}: cannot export the language model:\n  " + string.Join("\n  ", problems));
        WriteAtomically(w, outputPath);
        return Report(outputPath, options.OutputType, tracker, sw);
    }

    static GgufFileReport Report(string path, GgufOutputType type, ExportTracker tracker, System.Diagnostics.Stopwatch sw) =>
        new(path, type, new FileInfo(path).Length, tracker.Tensors.Sum(x => x.SourceBytes), tracker.Tensors.ToList(), sw.Elapsed);

    /// <summary>The CLIP tower and projector as llama.cpp's mtmd loads a LLaVA-1.5 mmproj (projector_type mlp).</summary>
    public static GgufFileReport ExportMmproj(string modelDirectory, string outputPath, GgufExportOptions? options = null)
    {
        options ??= new GgufExportOptions();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var mmprojType = options.ResolvedMmprojType;
        var config = LlavaConfig.Load(modelDirectory, options.VisionTower);
        RequireFullCheckpoint(config);
        var v = config.Vision;
        if (config.ProjectorType != "mlp2x_gelu" || config.ProjectorAct != "gelu")
            throw new ModelFormatException($"{modelDirectory}: projector '{config.ProjectorType}' ({config.ProjectorAct}) has no llama.cpp equivalent; only LLaVA-1.5's mlp2x_gelu exports as projector_type mlp");
        if (config.FeatureSelect != FeatureSelect.Patch)
            throw new ModelFormatException($"{modelDirectory}: llama.cpp's llava graph drops the CLS token; 'full'/'cls_patch' feature selection cannot be exported");
        if (v.HiddenAct is not ("quick_gelu" or "gelu"))
            throw new ModelFormatException($"{modelDirectory}: CLIP hidden_act '{v.HiddenAct}' cannot be exported (quick_gelu, gelu)");
        // LLaVA reads hidden_states[feature layer]; entry 0 is the embeddings, so that many blocks are needed and the
        // rest (and post_layernorm) are never used. Like real LLaVA-1.5 mmproj files, only the used blocks are written.
        int blocks = global::Llava.Models.Clip.ClipVisionTower.LayersFor(v, config.VisionFeatureLayer);

        ITensorFile? lmWeights = null, towerWeights = null;
        try
        {
            string visionPrefix, proj0, proj2;
            string processorDir;
            ITensorFile visionFile, projFile;
            if (config.Layout == CheckpointLayout.HuggingFace)
            {
                lmWeights = CheckpointFiles.OpenDirectory(modelDirectory);
                bool legacy = lmWeights.Contains("vision_tower.vision_model.embeddings.class_embedding");
                visionPrefix = legacy ? "vision_tower.vision_model." : "model.vision_tower.vision_model.";
                string pp = legacy ? "multi_modal_projector." : "model.multi_modal_projector.";
                proj0 = pp + "linear_1."; proj2 = pp + "linear_2.";
                visionFile = projFile = lmWeights;
                processorDir = modelDirectory;
            }
            else
            {
                lmWeights = CheckpointFiles.OpenDirectory(modelDirectory);
                towerWeights = CheckpointFiles.OpenDirectory(config.VisionTowerPath!);
                visionPrefix = "vision_model.";
                proj0 = "model.mm_projector.0."; proj2 = "model.mm_projector.2.";
                visionFile = towerWeights;
                projFile = lmWeights;
                processorDir = config.VisionTowerPath!;
            }
            var processorPath = Path.Combine(processorDir, "preprocessor_config.json");
            var processor = File.Exists(processorPath) ? ClipImageProcessorConfig.Load(processorPath) : new ClipImageProcessorConfig();

            var matrixType = mmprojType.BaseType();
            // ggml's im2col convolution takes F32 or F16 kernels; BF16 exports keep the patch kernel in F16 like the legacy converter.
            var convType = matrixType == GgmlType.BF16 ? GgmlType.F16 : matrixType;
            int featureLayer = blocks;
            var w = new GgufWriter();
            w.AddString("general.architecture", "clip")
             .AddString("general.type", "mmproj")
             .AddString("general.name", config.ModelName)
             .AddString("general.description", "image encoder for LLaVA")
             .AddUInt32("general.file_type", mmprojType.FileType())
             .AddBool("clip.has_text_encoder", false)
             .AddBool("clip.has_vision_encoder", true)
             .AddBool("clip.has_llava_projector", true)
             .AddString("clip.projector_type", "mlp")
             .AddUInt32("clip.vision.image_size", (uint)v.ImageSize)
             .AddUInt32("clip.vision.patch_size", (uint)v.PatchSize)
             .AddUInt32("clip.vision.embedding_length", (uint)v.HiddenSize)
             .AddUInt32("clip.vision.feed_forward_length", (uint)v.IntermediateSize)
             .AddUInt32("clip.vision.projection_dim", (uint)config.Text.HiddenSize)
             .AddUInt32("clip.vision.attention.head_count", (uint)v.NumHeads)
             .AddFloat32("clip.vision.attention.layer_norm_epsilon", v.LayerNormEps)
             .AddUInt32("clip.vision.block_count", (uint)blocks)
             // Without feature_layer llama.cpp runs block_count − 1 blocks (it assumes all blocks were written); naming
             // the hidden state explicitly makes it run exactly the written blocks and take their output.
             .AddInt32Array("clip.vision.feature_layer", [featureLayer])
             .AddFloat32Array("clip.vision.image_mean", processor.ImageMean.Select(x => (float)x))
             .AddFloat32Array("clip.vision.image_std", processor.ImageStd.Select(x => (float)x))
             .AddBool("clip.use_gelu", v.HiddenAct == "gelu")
             .AddBool("clip.use_silu", false);

            var problems = new List<string>();
            var tracker = new ExportTracker(options.Progress) { Path = outputPath };
            var pv = new TensorPlan(visionFile, w, problems, tracker);
            var pp2 = new TensorPlan(projFile, w, problems, tracker);
            int c = v.HiddenSize, f = v.IntermediateSize, ct = config.Text.HiddenSize;
            // Conv kernel [C, 3, P, P] → ne [P, P, 3, C]: same bytes, one "row" per output channel.
            pv.Tensor("v.patch_embd.weight", visionPrefix + "embeddings.patch_embedding.weight", [c, v.NumChannels, v.PatchSize, v.PatchSize], convType);
            pv.Vector("v.class_embd", visionPrefix + "embeddings.class_embedding", c);
            pv.Matrix("v.position_embd.weight", visionPrefix + "embeddings.position_embedding.weight", v.NumPositions, c, matrixType);
            pv.Vector("v.pre_ln.weight", visionPrefix + "pre_layrnorm.weight", c);
            pv.Vector("v.pre_ln.bias", visionPrefix + "pre_layrnorm.bias", c);
            for (int i = 0; i < blocks; i++)
            {
                string p = $"{visionPrefix}encoder.layers.{i}.", b = $"v.blk.{i}.";
                foreach (var (g, hf) in new[] { ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"), ("attn_out", "self_attn.out_proj") })
                {
                    pv.Matrix(b + g + ".weight", p + hf + ".weight", c, c, matrixType);
                    pv.Vector(b + g + ".bias", p + hf + ".bias", c);
                }
                pv.Vector(b + "ln1.weight", p + "layer_norm1.weight", c);
                pv.Vector(b + "ln1.bias", p + "layer_norm1.bias", c);
                // fc1 (C → F) is the up projection; modern llama.cpp names it so (the legacy script swapped the names).
                pv.Matrix(b + "ffn_up.weight", p + "mlp.fc1.weight", f, c, matrixType);
                pv.Vector(b + "ffn_up.bias", p + "mlp.fc1.bias", f);
                pv.Matrix(b + "ffn_down.weight", p + "mlp.fc2.weight", c, f, matrixType);
                pv.Vector(b + "ffn_down.bias", p + "mlp.fc2.bias", c);
                pv.Vector(b + "ln2.weight", p + "layer_norm2.weight", c);
                pv.Vector(b + "ln2.bias", p + "layer_norm2.bias", c);
            }
            pp2.Matrix("mm.0.weight", proj0 + "weight", ct, c, matrixType);
            pp2.Vector("mm.0.bias", proj0 + "bias", ct);
            pp2.Matrix("mm.2.weight", proj2 + "weight", ct, ct, matrixType);
            pp2.Vector("mm.2.bias", proj2 + "bias", ct);
            if (problems.Count > 0)
                throw new ModelFormatException($"{modelDirectory}: cannot export the vision projector:\n  " + string.Join("\n  ", problems));
            WriteAtomically(w, outputPath);
            return Report(outputPath, mmprojType, tracker, sw);
        }
        finally
        {
            lmWeights?.Dispose();
            towerWeights?.Dispose();
        }
    }

    static void RequireFullCheckpoint(LlavaConfig config)
    {
        if (config.Layout == CheckpointLayout.Original && !CheckpointFiles.HasWeights(config.ModelDirectory))
            throw new ModelFormatException($"{config.ModelDirectory}: no language model weights (a projector-only checkpoint cannot be exported; merge it with its base model first)");
    }

    /// <summary>Writes to a temporary name first so a failed export never leaves a half-written .gguf behind.</summary>
    static void WriteAtomically(GgufWriter w, string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var tmp = path + ".partial";
        try
        {
            w.Write(tmp);
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }
}
