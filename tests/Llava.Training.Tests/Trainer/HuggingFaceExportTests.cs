using System.Text.Json.Nodes;
using Llava.Formats;
using Llava.Formats.Safetensors;
using Llava.Models.Llama;
using Llava.Models.Llava;
using Llava.Tensors;
using Llava.Text;
using Llava.Training.Model;
using Llava.Training.Recipe;
using Llava.Training.Trainer;

namespace Llava.Tests;

/// <summary>
/// Full checkpoints in the llava-hf layout: the original-layout tiny fixture (+ its CLIP tower) through the exporter,
/// loaded back by <see cref="LlavaModel.Load"/>, against the original layout, the fixture's own llava-hf directory and
/// the logits transformers computed on it.
/// </summary>
public sealed class HuggingFaceExportTests(ITestOutputHelper output) : IDisposable
{
    readonly TempDir dir = new();
    public void Dispose() => dir.Dispose();

    static string OriginalDir => Fixtures.TinyPath("original", "llava-v1.5-tiny");
    static string FixtureHf => Fixtures.TinyPath("hf");

    /// <summary>Logits of the last <paramref name="rows"/> positions; the image placeholder (−200 or the model's image id) expands to the image features.</summary>
    internal static float[] Logits(LlavaModel m, int[] ids, float[]? pixels, int rows)
    {
        var lm = m.Language;
        int h = lm.Config.HiddenSize;
        var features = pixels is null ? null : m.EncodeImage(pixels);
        int n = m.Config.NumImageTokens;
        var rowsList = new List<float[]>();
        var hiddenList = new List<float>();
        foreach (int id in ids)
        {
            if (id == LlavaConfig.OriginalImageTokenIndex || (pixels is not null && id == m.Config.ImageTokenIndex))
                hiddenList.AddRange(features!);
            else
            {
                var e = new float[h];
                lm.Embed(e, [id]);
                hiddenList.AddRange(e);
            }
        }
        var hidden = hiddenList.ToArray();
        int T = hidden.Length / h;
        lm.Forward(hidden, T, new KvCache(lm.Config, T), new LlamaScratch(lm.Config, T));
        var logits = new float[rows * lm.VocabSize];
        lm.Logits(logits, hidden.AsSpan((T - rows) * h), rows);
        _ = n;
        return logits;
    }

    /// <summary>The first <paramref name="cols"/> columns of each row of a (rows, vocab) matrix.</summary>
    static float[] Columns(float[] logits, int vocab, int cols)
    {
        int rows = logits.Length / vocab;
        var r = new float[rows * cols];
        for (int i = 0; i < rows; i++) logits.AsSpan(i * vocab, cols).CopyTo(r.AsSpan(i * cols, cols));
        return r;
    }

    static Dictionary<string, long[]> Shapes(string modelDir)
    {
        using var f = SafetensorsFile.Open(Path.Combine(modelDir, "model.safetensors"));
        return f.Names.ToDictionary(n => n, n => f.Get(n).Shape);
    }

    [Fact]
    public void TrainedModel_SavedAsHfF32_LoadsAndGivesTheOriginalLayoutsLogits()
    {
        var c = ReferenceCase.Get("extreme_ironing__default");
        var pixels = c.Tensor("pixel_values");
        string hfDir = Path.Combine(dir.Path, "hf-f32");
        float[] expected;
        using (var frozen = LlavaModel.Load(OriginalDir))
        {
            using var model = new TrainableLlava(frozen, TrainingMode.Finetune);
            ModelExport.SaveHuggingFace(model, hfDir, DType.F32);
            expected = Logits(frozen, c.InputIdsOriginal!, pixels, 8);
        }
        using var hf = LlavaModel.Load(hfDir);
        Assert.Equal(CheckpointLayout.HuggingFace, hf.Config.Layout);
        Assert.Equal(32064, hf.Language.VocabSize);
        var actual = Logits(hf, c.InputIdsOriginal!, pixels, 8);
        var first = Columns(actual, 32064, 32000);
        double err = Numerics.RelativeError(first, expected);
        double max = Numerics.MaxAbs(first, expected);
        output.WriteLine($"f32 llava-hf vs original layout: rel err {err:E2}, max abs {max:E2}");
        // Same values (bf16 → f32 is exact); only the f32 vs bf16 kernels' summation order may differ.
        Assert.InRange(err, 0, 1e-6);

        using var f = SafetensorsFile.Open(Path.Combine(hfDir, "model.safetensors"));
        Assert.All(f.Names, n => Assert.Equal(DType.F32, f.Get(n).DType));
    }

    [Fact]
    public void OriginalCheckpoint_ConvertedToHfBf16_IsBitIdentical_AndMatchesTheFixturesLayout()
    {
        string hfDir = Path.Combine(dir.Path, "hf-bf16");
        ModelExport.ConvertToHuggingFace(OriginalDir, hfDir, dtype: DType.BF16);

        // Same tensor names and shapes as the llava-hf fixture (transformers' own conversion), vocabulary padded alike.
        var ours = Shapes(hfDir);
        var theirs = Shapes(FixtureHf);
        Assert.Equal(theirs.Keys.Order(StringComparer.Ordinal), ours.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, shape) in theirs) Assert.True(shape.SequenceEqual(ours[name]), $"{name}: [{string.Join(",", ours[name])}] vs fixture [{string.Join(",", shape)}]");
        // Every tensor the two share byte for byte: all but the added vocabulary rows.
        using (var a = SafetensorsFile.Open(Path.Combine(hfDir, "model.safetensors")))
        using (var b = SafetensorsFile.Open(Path.Combine(FixtureHf, "model.safetensors")))
            foreach (var name in a.Names)
            {
                var ta = a.Get(name); var tb = b.Get(name);
                Assert.Equal(tb.DType, ta.DType);
                int n = name.EndsWith("embed_tokens.weight") || name.EndsWith("lm_head.weight") ? 32000 * 64 * 2 : (int)tb.ByteLength;
                Assert.True(ta.Bytes[..n].SequenceEqual(tb.Bytes[..n]), $"{name} differs from the fixture");
            }

        // config.json: what transformers reads.
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(hfDir, "config.json")))!.AsObject();
        var fix = JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureHf, "config.json")))!.AsObject();
        foreach (var key in new[] { "architectures", "ignore_index", "image_seq_length", "image_token_index", "model_type", "pad_token_id", "projector_hidden_act",
                     "tie_word_embeddings", "torch_dtype", "vision_feature_layer", "vision_feature_select_strategy" })
            Assert.True(JsonNode.DeepEquals(fix[key], cfg[key]), $"config.{key}: {cfg[key]?.ToJsonString()} vs fixture {fix[key]?.ToJsonString()}");
        foreach (var key in new[] { "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                     "head_dim", "rms_norm_eps", "rope_theta", "max_position_embeddings", "hidden_act", "tie_word_embeddings", "pad_token_id", "bos_token_id", "eos_token_id", "rope_scaling" })
            Assert.True(JsonNode.DeepEquals(fix["text_config"]![key], cfg["text_config"]![key]), $"text_config.{key}: {cfg["text_config"]![key]?.ToJsonString()} vs fixture {fix["text_config"]![key]?.ToJsonString()}");
        foreach (var key in new[] { "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size",
                     "num_channels", "hidden_act", "layer_norm_eps", "projection_dim" })
            Assert.True(JsonNode.DeepEquals(fix["vision_config"]![key], cfg["vision_config"]![key]), $"vision_config.{key}: {cfg["vision_config"]![key]?.ToJsonString()} vs fixture {fix["vision_config"]![key]?.ToJsonString()}");
        Assert.False(cfg["text_config"]!.AsObject().Any(p => p.Key.StartsWith("mm_")), "LLaVA's mm_* keys leaked into text_config");

        // The image processor and the added tokens as the fixture has them.
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureHf, "preprocessor_config.json"))),
            JsonNode.Parse(File.ReadAllText(Path.Combine(hfDir, "preprocessor_config.json")))));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureHf, "added_tokens.json"))),
            JsonNode.Parse(File.ReadAllText(Path.Combine(hfDir, "added_tokens.json")))));
        var ourTok = LlamaTokenizer.FromDirectory(hfDir);
        var fixTok = LlamaTokenizer.FromDirectory(FixtureHf);
        foreach (var s in new[] { "USER: <image>\nWhat is shown? ASSISTANT:", "<image><pad> a<image>b", "Hello world" })
            Assert.Equal(fixTok.Encode(s), ourTok.Encode(s));
        Assert.Contains(32000, ourTok.Encode("<image>"));

        // Same logits as the original layout, bit for bit (same bf16 bytes, same kernels) …
        var c = ReferenceCase.Get("synthetic_500x300__default");
        var pixels = c.Tensor("pixel_values");
        using var original = LlavaModel.Load(OriginalDir);
        using var hf = LlavaModel.Load(hfDir);
        var expected = Logits(original, c.InputIdsOriginal!, pixels, 8);
        var actual = Logits(hf, c.InputIdsOriginal!, pixels, 8);
        Assert.Equal(expected, Columns(actual, 32064, 32000));
        // … and transformers' logits on the llava-hf fixture for its own ids (single <image> = 32000), over the real vocabulary.
        var hfIds = Logits(hf, c.InputIdsHf, pixels, 8);
        double err = Numerics.RelativeError(Columns(hfIds, 32064, 32000), Columns(c.Tensor("logits_last"), 32064, 32000));
        output.WriteLine($"exported llava-hf vs transformers on the fixture: rel err {err:E2}");
        Assert.InRange(err, 0, 1e-4);
    }

    [Fact]
    public void AddedVocabularyRows_AreTheMeanOfTheExistingRows()
    {
        string hfDir = Path.Combine(dir.Path, "hf");
        ModelExport.ConvertToHuggingFace(OriginalDir, hfDir, dtype: DType.F32);
        using var src = SafetensorsFile.Open(Path.Combine(OriginalDir, "model.safetensors"));
        using var f = SafetensorsFile.Open(Path.Combine(hfDir, "model.safetensors"));
        foreach (var (a, b) in new[] { ("model.embed_tokens.weight", "language_model.model.embed_tokens.weight"), ("lm_head.weight", "language_model.lm_head.weight") })
        {
            var w = src.Get(a).ToFloat32();
            var p = f.Get(b).ToFloat32();
            Assert.Equal(w, p.AsSpan(0, w.Length).ToArray());
            for (int c = 0; c < 64; c++)
            {
                double mean = 0;
                for (int r = 0; r < 32000; r++) mean += w[r * 64 + c];
                float m = (float)(mean / 32000);
                for (int r = 32000; r < 32064; r++) Assert.Equal(m, p[r * 64 + c]);
            }
        }
    }

    [Fact]
    public void TiedMicroCheckpoint_SavedAsHf_HasNoHeadTensor_AndKeepsItsLogits()
    {
        var ckpt = MicroLlavaFactory.Create(Path.Combine(dir.Path, "micro"), new MicroLlavaConfig { TextLayers = 1, VisionLayers = 2 }, seed: 5);
        string hfDir = Path.Combine(dir.Path, "micro-hf");
        int[] ids = [1, 450, LlavaConfig.OriginalImageTokenIndex, 17205, 338, 2654, 29889];
        var rng = new Random(3);
        float[] pixels;
        float[] expected;
        using (var frozen = LlavaModel.Load(ckpt.ModelDirectory))
        {
            pixels = Enumerable.Range(0, 3 * frozen.Config.Vision.ImageSize * frozen.Config.Vision.ImageSize).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            using var model = new TrainableLlava(frozen, TrainingMode.Finetune);
            Assert.DoesNotContain(model.Parameters, p => p.Name == "lm_head.weight");
            ModelExport.SaveHuggingFace(model, hfDir, DType.F32);
            expected = Logits(frozen, ids, pixels, 3);
        }
        var shapes = Shapes(hfDir);
        Assert.DoesNotContain("language_model.lm_head.weight", shapes.Keys);
        Assert.Equal([32064L, 256L], shapes["language_model.model.embed_tokens.weight"]);
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(hfDir, "config.json")))!;
        Assert.True(cfg["text_config"]!["tie_word_embeddings"]!.GetValue<bool>());
        Assert.True(cfg["tie_word_embeddings"]!.GetValue<bool>());
        Assert.Equal(64, cfg["image_seq_length"]!.GetValue<int>());
        Assert.Equal(112, cfg["vision_config"]!["image_size"]!.GetValue<int>());
        var pre = JsonNode.Parse(File.ReadAllText(Path.Combine(hfDir, "preprocessor_config.json")))!;
        Assert.Equal(112, pre["crop_size"]!["height"]!.GetValue<int>());

        using var hf = LlavaModel.Load(hfDir);
        Assert.True(hf.Config.Text.TieWordEmbeddings);
        var actual = Columns(Logits(hf, ids, pixels, 3), 32064, 32000);
        double err = Numerics.RelativeError(actual, expected);
        output.WriteLine($"tied micro: rel err {err:E2}");
        Assert.InRange(err, 0, 1e-6);
    }

    [Fact]
    public void LoraModel_IsRefused_WithAPointerToMergeLora()
    {
        using var frozen = LlavaModel.Load(OriginalDir);
        using var model = new TrainableLlava(frozen, TrainingMode.Lora, new LoraOptions(4, 8, 0));
        var e = Assert.Throws<NotSupportedException>(() => ModelExport.SaveHuggingFace(model, Path.Combine(dir.Path, "x")));
        Assert.Contains("merge-lora", e.Message);
    }
}
