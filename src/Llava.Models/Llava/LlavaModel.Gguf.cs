using Llava.Formats;
using Llava.Formats.Gguf;
using Llava.Models.Clip;
using Llava.Models.Llama;
using Llava.Models.Loading;
using Llava.Text;
using Llava.Vision;

namespace Llava.Models.Llava;

/// <summary>
/// Loading llama.cpp's LLaVA files: a GGUF text model (general.architecture = llama, tokenizer in tokenizer.ggml.*)
/// plus an mmproj GGUF (projector_type mlp). Tensors are mapped to the Hugging Face names the model code reads, so
/// the same CLIP / projector / LLaMA classes run them; quantized blocks are used in place from the memory map.
/// </summary>
public sealed partial class LlavaModel
{
    static LlavaModel LoadGguf(string path, LlavaLoadOptions options, Action<int, int, string>? progress)
    {
        var files = new List<ITensorFile>();
        try
        {
            progress?.Invoke(0, 4, "reading GGUF");
            var text = GgufFile.Open(path);
            files.Add(text);
            var m = text.Metadata;
            string arch = m.GetStringOrNull("general.architecture") ?? "?";
            if (arch != "llama")
                throw new ModelFormatException($"{path}: general.architecture is '{arch}'; only llama text models are supported");
            var lmConfig = LlamaFromGguf(text);

            // The vision side: an mmproj file is required for images, as in llama.cpp.
            if (options.Mmproj is null)
                throw new ModelFormatException($"{path} is a GGUF text model; pass --mmproj with its vision file (mmproj-*.gguf)");
            progress?.Invoke(1, 4, "vision tower");
            var proj = GgufFile.Open(options.Mmproj);
            files.Add(proj);
            var (vision, visionLayers, projectorDepth, mean, std) = ClipFromGguf(proj);

            var visionFile = new RenamedTensorFile(proj, n => ClipName(n, proj), ClipCanonicalNames(visionLayers, projectorDepth));
            var vr = new WeightReader(visionFile);
            var tower = new ClipVisionTower(vr, "vision_model.", vision, visionLayers);
            progress?.Invoke(2, 4, "projector");
            var names = Enumerable.Range(0, projectorDepth).Select(i => $"mm.{2 * i}").ToArray();
            var projector = LlavaProjector.Load(vr, names, vision.HiddenSize, lmConfig.HiddenSize, "gelu");
            vr.ThrowIfProblems("the mmproj file");

            progress?.Invoke(3, 4, "language model");
            var lmFile = new RenamedTensorFile(text, LlamaName, LlamaCanonicalNames(lmConfig));
            var lr = new WeightReader(lmFile) { Quantizer = Quantizer(options, files) };
            var lmConfigFinal = lmConfig with { TieWordEmbeddings = !text.Contains("output.weight") };
            var language = new LlamaModel(lr, "model.", "lm_head.weight", lmConfigFinal);
            lr.ThrowIfProblems("the GGUF text model");

            var tokenizer = TokenizerFromGguf(text);
            var processor = new ClipImageProcessor(new ClipImageProcessorConfig
            {
                SizeShortestEdge = vision.ImageSize, CropHeight = vision.ImageSize, CropWidth = vision.ImageSize,
                ImageMean = mean, ImageStd = std,
            });
            var config = new LlavaConfig
            {
                Layout = CheckpointLayout.Gguf,
                ModelDirectory = Path.GetDirectoryName(Path.GetFullPath(path))!,
                ModelName = Path.GetFileNameWithoutExtension(path),
                Vision = vision,
                Text = lmConfigFinal,
                ProjectorType = projectorDepth == 1 ? "linear" : $"mlp{projectorDepth}x_gelu",
                VisionFeatureLayer = visionLayers,
                ImageTokenIndex = LlavaConfig.OriginalImageTokenIndex,
                // llama.cpp pads LLaVA-1.5 images to a square with the mean colour, as LLaVA does.
                ImageAspect = ImageAspectMode.Pad,
                VisionTowerPath = options.Mmproj,
                ContextLength = lmConfigFinal.MaxPositionEmbeddings,
            };
            progress?.Invoke(4, 4, "ready");
            return new LlavaModel(config, tower, projector, language, tokenizer, processor, files, CheckpointSummary.Of(files, vr, lr));
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    static LlamaConfig LlamaFromGguf(GgufFile f)
    {
        var m = f.Metadata;
        int hidden = (int)m.GetInt("llama.embedding_length");
        int heads = (int)m.GetInt("llama.attention.head_count");
        int vocab = m.Contains("llama.vocab_size") ? (int)m.GetInt("llama.vocab_size") : m.GetArray("tokenizer.ggml.tokens").Count;
        RopeScaling? scaling = m.GetStringOrNull("llama.rope.scaling.type") switch
        {
            null or "none" => null,
            "linear" => new RopeScaling("linear", m.GetFloat("llama.rope.scaling.factor", 1)),
            var other => throw new ModelFormatException($"{f.Source}: rope scaling '{other}' is not supported"),
        };
        return new LlamaConfig
        {
            VocabSize = vocab,
            HiddenSize = hidden,
            IntermediateSize = (int)m.GetInt("llama.feed_forward_length"),
            NumLayers = (int)m.GetInt("llama.block_count"),
            NumHeads = heads,
            NumKvHeads = (int)m.GetInt("llama.attention.head_count_kv", heads),
            HeadDim = (int)m.GetInt("llama.rope.dimension_count", hidden / heads),
            RmsNormEps = (float)m.GetFloat("llama.attention.layer_norm_rms_epsilon", 1e-5),
            RopeTheta = m.GetFloat("llama.rope.freq_base", 10000),
            RopeScaling = scaling,
            MaxPositionEmbeddings = (int)m.GetInt("llama.context_length", 2048),
            BosTokenId = (int)m.GetInt("tokenizer.ggml.bos_token_id", 1),
            EosTokenIds = [(int)m.GetInt("tokenizer.ggml.eos_token_id", 2)],
            RopeInterleaved = true,
        };
    }

    static string? LlamaName(string canonical)
    {
        if (canonical == "model.embed_tokens.weight") return "token_embd.weight";
        if (canonical == "model.norm.weight") return "output_norm.weight";
        if (canonical == "lm_head.weight") return "output.weight";
        if (!canonical.StartsWith("model.layers.")) return null;
        var parts = canonical.Split('.');                    // model.layers.N.<module>.<sub>.weight
        string n = parts[2], rest = string.Join('.', parts[3..]);
        string? name = rest switch
        {
            "input_layernorm.weight" => "attn_norm.weight",
            "post_attention_layernorm.weight" => "ffn_norm.weight",
            "self_attn.q_proj.weight" => "attn_q.weight",
            "self_attn.k_proj.weight" => "attn_k.weight",
            "self_attn.v_proj.weight" => "attn_v.weight",
            "self_attn.o_proj.weight" => "attn_output.weight",
            "mlp.gate_proj.weight" => "ffn_gate.weight",
            "mlp.up_proj.weight" => "ffn_up.weight",
            "mlp.down_proj.weight" => "ffn_down.weight",
            _ => null,
        };
        return name is null ? null : $"blk.{n}.{name}";
    }

    static IEnumerable<string> LlamaCanonicalNames(LlamaConfig c)
    {
        yield return "model.embed_tokens.weight";
        yield return "model.norm.weight";
        yield return "lm_head.weight";
        for (int l = 0; l < c.NumLayers; l++)
            foreach (var s in new[] { "input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj" })
                yield return $"model.layers.{l}.{s}.weight";
    }

    /// <summary>CLIP hyper-parameters from clip.vision.*; the layers present are the ones LLaVA uses.</summary>
    static (ClipVisionConfig Config, int Layers, int ProjectorDepth, double[] Mean, double[] Std) ClipFromGguf(GgufFile f)
    {
        var m = f.Metadata;
        string ptype = m.GetStringOrNull("clip.projector_type") ?? "mlp";
        if (ptype != "mlp") throw new ModelFormatException($"{f.Source}: clip.projector_type '{ptype}' is not supported (mlp: LLaVA-1.5)");
        if (!m.GetBool("clip.has_vision_encoder", true)) throw new ModelFormatException($"{f.Source}: has no vision encoder");
        int blocks = (int)m.GetInt("clip.vision.block_count");
        int present = 0;
        while (f.Contains($"v.blk.{present}.attn_q.weight")) present++;
        // Real LLaVA-1.5 files keep only the blocks up to the selected hidden state (23 of 24). An explicit
        // clip.vision.feature_layer names the layer; otherwise the last stored block's output is the feature.
        int layers = present;
        if (m.Contains("clip.vision.feature_layer"))
        {
            var fl = m.GetIntArray("clip.vision.feature_layer");
            if (fl.Length != 1) throw new ModelFormatException($"{f.Source}: multi-layer vision features are not supported");
            layers = (int)fl[0];
            if (layers > present) throw new ModelFormatException($"{f.Source}: feature layer {layers} but only {present} blocks are stored");
        }
        int depth = 0;
        while (f.Contains($"mm.{2 * depth}.weight")) depth++;
        var config = new ClipVisionConfig
        {
            HiddenSize = (int)m.GetInt("clip.vision.embedding_length"),
            IntermediateSize = (int)m.GetInt("clip.vision.feed_forward_length"),
            NumLayers = Math.Max(blocks, present),
            NumHeads = (int)m.GetInt("clip.vision.attention.head_count"),
            ImageSize = (int)m.GetInt("clip.vision.image_size"),
            PatchSize = (int)m.GetInt("clip.vision.patch_size"),
            LayerNormEps = (float)m.GetFloat("clip.vision.attention.layer_norm_epsilon", 1e-5),
            HiddenAct = m.GetBool("clip.use_gelu", false) ? "gelu" : "quick_gelu",
        };
        var mean = m.Contains("clip.vision.image_mean") ? m.GetFloatArray("clip.vision.image_mean") : ClipImageProcessorConfig.OpenAiClipMean;
        var std = m.Contains("clip.vision.image_std") ? m.GetFloatArray("clip.vision.image_std") : ClipImageProcessorConfig.OpenAiClipStd;
        return (config, layers, depth, mean, std);
    }

    /// <summary>HF CLIP names → mmproj names (older converters swap ffn_up/ffn_down: detected by shape).</summary>
    static string? ClipName(string canonical, GgufFile f)
    {
        if (canonical.StartsWith("mm.")) return canonical;
        const string p = "vision_model.";
        if (!canonical.StartsWith(p)) return null;
        string rest = canonical[p.Length..];
        switch (rest)
        {
            case "embeddings.patch_embedding.weight": return "v.patch_embd.weight";
            case "embeddings.class_embedding": return "v.class_embd";
            case "embeddings.position_embedding.weight": return "v.position_embd.weight";
            case "pre_layrnorm.weight": return "v.pre_ln.weight";
            case "pre_layrnorm.bias": return "v.pre_ln.bias";
        }
        if (!rest.StartsWith("encoder.layers.")) return null;
        var parts = rest.Split('.');                          // encoder.layers.N.<a>.<b>.<weight|bias>
        string n = parts[2], leaf = parts[^1], module = string.Join('.', parts[3..^1]);
        bool swapped = f.TryGetInfo($"v.blk.{n}.ffn_up.weight", out var up) && up.Shape.Length == 2 && up.Shape[0] < up.Shape[1];
        string? name = module switch
        {
            "self_attn.q_proj" => "attn_q",
            "self_attn.k_proj" => "attn_k",
            "self_attn.v_proj" => "attn_v",
            "self_attn.out_proj" => "attn_out",
            "layer_norm1" => "ln1",
            "layer_norm2" => "ln2",
            "mlp.fc1" => swapped ? "ffn_down" : "ffn_up",
            "mlp.fc2" => swapped ? "ffn_up" : "ffn_down",
            _ => null,
        };
        return name is null ? null : $"v.blk.{n}.{name}.{leaf}";
    }

    static IEnumerable<string> ClipCanonicalNames(int layers, int projectorDepth)
    {
        foreach (var s in new[] { "embeddings.patch_embedding.weight", "embeddings.class_embedding", "embeddings.position_embedding.weight", "pre_layrnorm.weight", "pre_layrnorm.bias" })
            yield return "vision_model." + s;
        for (int l = 0; l < layers; l++)
            foreach (var mod in new[] { "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "layer_norm1", "layer_norm2", "mlp.fc1", "mlp.fc2" })
                foreach (var leaf in new[] { "weight", "bias" })
                    yield return $"vision_model.encoder.layers.{l}.{mod}.{leaf}";
        for (int i = 0; i < projectorDepth; i++)
        {
            yield return $"mm.{2 * i}.weight";
            yield return $"mm.{2 * i}.bias";
        }
    }

    /// <summary>The SentencePiece tokenizer llama.cpp embeds (tokens, scores, token types, special ids).</summary>
    static LlamaTokenizer TokenizerFromGguf(GgufFile f)
    {
        var m = f.Metadata;
        string model = m.GetStringOrNull("tokenizer.ggml.model") ?? "?";
        if (model != "llama") throw new ModelFormatException($"{f.Source}: tokenizer.ggml.model '{model}' is not supported (llama SentencePiece)");
        var tokens = m.GetStringArray("tokenizer.ggml.tokens");
        var scores = m.Contains("tokenizer.ggml.scores") ? m.GetFloatArray("tokenizer.ggml.scores") : new double[tokens.Length];
        var types = m.Contains("tokenizer.ggml.token_type") ? m.GetIntArray("tokenizer.ggml.token_type") : Enumerable.Repeat(1L, tokens.Length).ToArray();
        if (scores.Length != tokens.Length || types.Length != tokens.Length)
            throw new ModelFormatException($"{f.Source}: tokenizer arrays have different lengths ({tokens.Length} tokens, {scores.Length} scores, {types.Length} types)");
        var pieces = new List<(string, float, PieceType)>(tokens.Length);
        for (int i = 0; i < tokens.Length; i++)
            pieces.Add((tokens[i], (float)scores[i], types[i] is >= 1 and <= 6 ? (PieceType)types[i] : PieceType.Normal));
        int unk = (int)m.GetInt("tokenizer.ggml.unknown_token_id", 0);
        int bos = (int)m.GetInt("tokenizer.ggml.bos_token_id", 1);
        int eos = (int)m.GetInt("tokenizer.ggml.eos_token_id", 2);
        foreach (var (id, what) in new[] { (unk, "unknown"), (bos, "bos"), (eos, "eos") })
            if ((uint)id >= (uint)tokens.Length) throw new ModelFormatException($"{f.Source}: tokenizer.ggml.{what} id {id} is outside the {tokens.Length} tokens");
        // llama.cpp's converter marks every special added token CONTROL, <unk> included: restore its role.
        pieces[unk] = (pieces[unk].Item1, pieces[unk].Item2, PieceType.Unknown);
        var sp = SentencePieceModel.FromPieces(pieces, unk, bos, eos);
        return new LlamaTokenizer(sp, new LlamaTokenizerOptions
        {
            Legacy = false,
            AddBosToken = m.GetBool("tokenizer.ggml.add_bos_token", true),
            AddEosToken = m.GetBool("tokenizer.ggml.add_eos_token", false),
            BosToken = tokens[bos],
            EosToken = tokens[eos],
            UnkToken = tokens[unk],
        });
    }
}
