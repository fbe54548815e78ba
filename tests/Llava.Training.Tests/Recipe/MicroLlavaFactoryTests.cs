using Llava.Formats;
using Llava.Formats.Safetensors;
using Llava.Models.Llama;
using Llava.Models.Llava;
using Llava.Text;
using Llava.Training.Data;
using Llava.Training.Model;
using Llava.Training.Optim;
using Llava.Training.Recipe;
using Llava.Training.Synthetic;

namespace Llava.Training.Tests.Recipe;

/// <summary>One default micro checkpoint and a 4-image shapes dataset, made once for the class (≈2 s).</summary>
public sealed class MicroLlavaFixture : IDisposable
{
    public string Root { get; } = Path.Combine(Path.GetTempPath(), "micro-llava-" + Guid.NewGuid().ToString("N"));
    public MicroLlavaCheckpoint Checkpoint { get; }
    public string DataDir => Path.Combine(Root, "shapes");

    public MicroLlavaFixture()
    {
        Checkpoint = MicroLlavaFactory.Create(Path.Combine(Root, "ck"), MicroLlavaConfig.Default, seed: 1);
        ShapesDataset.Write(DataDir, new ShapesDatasetCounts(Train: 4, HeldOut: 0, EvalQuestionsPerImage: 0), seed: 5);
    }

    /// <summary>The shapes finetune.json records as the model sees them (vicuna_v1 template, pad).</summary>
    public List<TrainingExample> Examples(LlavaModel frozen)
    {
        var options = new LlavaDataOptions
        {
            ImageFolder = Path.Combine(DataDir, "images"),
            Template = ConversationTemplates.Get("v1"),
            ImageAspectRatio = ImageAspectRatio.Pad,
            ModelMaxLength = 2048,
        };
        var ds = LlavaDataset.Load(Path.Combine(DataDir, "finetune.json"), frozen.Tokenizer, frozen.ImageProcessor, options);
        return Enumerable.Range(0, ds.Count).Select(ds.GetSample).Select(s => new TrainingExample(s.InputIds, s.Labels, s.PixelValues)).ToList();
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}

public sealed class MicroLlavaFactoryTests(MicroLlavaFixture fx, ITestOutputHelper output) : IClassFixture<MicroLlavaFixture>
{
    [Fact]
    public void DefaultConfig_ParameterCountAndSize()
    {
        var c = MicroLlavaConfig.Default;
        Assert.Equal(679_040, c.VisionParameters);
        Assert.Equal(98_816, c.ProjectorParameters);
        Assert.Equal(8_192_000, c.EmbeddingParameters);
        Assert.Equal(3_164_160, c.TextLayerParameters);
        Assert.Equal(12_134_272, c.TotalParameters);
        Assert.Equal(24_268_544, c.Bf16Bytes);
        Assert.Equal(64, c.NumImageTokens);

        var ck = fx.Checkpoint;
        output.WriteLine($"params {ck.Parameters:N0}; model.safetensors {ck.ModelBytes:N0} B, clip {ck.VisionBytes:N0} B, total {ck.TotalBytes:N0} B");
        Assert.Equal(c.TotalParameters, ck.Parameters);
        Assert.InRange(ck.TotalBytes, c.Bf16Bytes, 25_000_000);   // headers add ~13 KB
        Assert.InRange(ck.TotalBytes, 0, 25L * 1024 * 1024);
    }

    [Fact]
    public void Checkpoint_HasOriginalLayoutFilesAndTiedEmbeddings()
    {
        var ck = fx.Checkpoint;
        foreach (var f in MicroLlavaFactory.TokenizerFiles.Append("config.json").Append("model.safetensors"))
            Assert.True(File.Exists(Path.Combine(ck.ModelDirectory, f)), f);
        foreach (var f in new[] { "config.json", "model.safetensors", "preprocessor_config.json" })
            Assert.True(File.Exists(Path.Combine(ck.VisionDirectory, f)), f);
        using var st = SafetensorsFile.Open(Path.Combine(ck.ModelDirectory, "model.safetensors"));
        Assert.DoesNotContain("lm_head.weight", st.Names);
        Assert.All(st.Names, n => Assert.Equal(Llava.Tensors.DType.BF16, st.Get(n).DType));
        Assert.Equal(4 + 4 * 9 + 2, st.Names.Count);   // embed, norm, 4 projector tensors, 9 per layer
        var embed = st.Get("model.embed_tokens.weight").ToFloat32();
        Assert.All(embed.AsSpan(0, 256).ToArray(), x => Assert.Equal(0f, x));   // padding row
        double sd = Math.Sqrt(embed.AsSpan(256).ToArray().Select(x => (double)x * x).Average());
        Assert.InRange(sd, 0.0195, 0.0205);
        Assert.All(st.Get("model.layers.0.input_layernorm.weight").ToFloat32(), x => Assert.Equal(1f, x));
        Assert.All(st.Get("model.mm_projector.2.bias").ToFloat32(), x => Assert.Equal(0f, x));
    }

    [Fact]
    public void Checkpoint_LoadsAndChats()
    {
        using var model = LlavaModel.Load(fx.Checkpoint.ModelDirectory);
        var cfg = model.Config;
        Assert.Equal(CheckpointLayout.Original, cfg.Layout);
        Assert.Equal("mlp2x_gelu", cfg.ProjectorType);
        Assert.Equal(-1, cfg.VisionFeatureLayer);
        Assert.Equal(FeatureSelect.Patch, cfg.FeatureSelect);
        Assert.Equal(ImageAspectMode.Pad, cfg.ImageAspect);
        Assert.Equal(64, cfg.NumImageTokens);
        Assert.True(cfg.Text.TieWordEmbeddings);
        Assert.Equal((256, 4, 4, 688, 32000), (cfg.Text.HiddenSize, cfg.Text.NumLayers, cfg.Text.NumHeads, cfg.Text.IntermediateSize, cfg.Text.VocabSize));
        Assert.Equal((128, 3, 112, 14), (cfg.Vision.HiddenSize, cfg.Vision.NumLayers, cfg.Vision.ImageSize, cfg.Vision.PatchSize));

        // What LlavaSession.Prefill + greedy Step do (Llava.Generation is not referenced by this test project):
        // tokenizer_image_token ids, image rows from CLIP → projector, LLaMA forward with a KV cache, tied lm_head.
        var pixels = fx.Examples(model)[0].PixelValues!;
        var features = model.EncodeImage(pixels);
        Assert.Equal(64 * 256, features.Length);
        Assert.All(features, x => Assert.True(float.IsFinite(x)));
        var ids = model.Tokenizer.TokenizerImageToken(
            "A chat between a curious user and an artificial intelligence assistant. USER: <image>\nWhat color is the circle? ASSISTANT:",
            LlavaConfig.OriginalImageTokenIndex);
        Assert.Equal(1, ids.Count(i => i == LlavaConfig.OriginalImageTokenIndex));
        var lm = model.Language;
        int h = lm.Config.HiddenSize, v = lm.VocabSize;
        var rows = new List<float[]>();
        foreach (int id in ids)
        {
            if (id == LlavaConfig.OriginalImageTokenIndex)
                for (int r = 0; r < 64; r++) rows.Add(features.AsSpan(r * h, h).ToArray());
            else { var row = new float[h]; lm.Embed(row, [id]); rows.Add(row); }
        }
        int T = rows.Count;
        Assert.Equal(ids.Length - 1 + 64, T);
        var hidden = rows.SelectMany(r => r).ToArray();
        var cache = new KvCache(lm.Config, T + 8);
        var scratch = new LlamaScratch(lm.Config, T);
        lm.Forward(hidden, T, cache, scratch);
        var logits = new float[v];
        lm.Logits(logits, hidden.AsSpan((T - 1) * h, h), 1);
        var generated = new List<int>();
        var step = new float[h];
        for (int s = 0; s < 4; s++)
        {
            Assert.All(logits, x => Assert.True(float.IsFinite(x)));
            int next = ArgMax(logits);
            generated.Add(next);
            lm.Embed(step, [next]);
            lm.Forward(step, 1, cache, scratch);
            lm.Logits(logits, step, 1);
        }
        Assert.Equal(T + 4, cache.Length);
        output.WriteLine($"prompt {T} positions, greedy ids [{string.Join(", ", generated)}] = \"{model.Tokenizer.Decode(generated)}\"");
        Assert.All(generated, id => Assert.InRange(id, 0, v - 1));
    }

    [Fact]
    public void TrainableLlava_OverfitsFourSamples()
    {
        // Stage 2 (everything but CLIP trains), AdamW lr 1e-3 constant, clip 1.0, one batch of 4 shapes conversations, 10 steps.
        // Bound: loss falls every step after the first two and ends below 60% of the initial ≈ ln(32000) = 10.37.
        using var frozen = LlavaModel.Load(fx.Checkpoint.ModelDirectory);
        using var model = new TrainableLlava(frozen, TrainingMode.Finetune);
        var batch = fx.Examples(frozen);
        Assert.Equal(4, batch.Count);
        var opt = new AdamW([new ParameterGroup(model.Parameters, WeightDecay: 0)]);
        var losses = new List<double>();
        for (int s = 0; s < 10; s++)
        {
            model.ZeroGrad();
            losses.Add(model.ForwardBackward(batch, out int supervised));
            Assert.True(supervised > 0);
            GradientClipping.ClipByGlobalNorm(model.Parameters, 1.0);
            opt.Step(1e-3, 1);
        }
        output.WriteLine("losses " + string.Join(" ", losses.Select(l => l.ToString("F3"))));
        Assert.InRange(losses[0], Math.Log(32000) - 0.5, Math.Log(32000) + 0.5);
        for (int s = 2; s < losses.Count; s++) Assert.True(losses[s] < losses[s - 1], $"step {s}: {losses[s]} !< {losses[s - 1]}");
        Assert.True(losses[^1] < 0.6 * losses[0], $"final {losses[^1]} vs initial {losses[0]}");
    }

    [Fact]
    public void SameSeed_SameBytes_OtherSeed_Differs()
    {
        var small = MicroLlavaConfig.Default with { TextHidden = 64, TextIntermediate = 172, TextLayers = 1, VocabSize = 32000, VisionLayers = 2, VisionHidden = 64, VisionIntermediate = 128 };
        string root = Path.Combine(fx.Root, "det");
        var a = MicroLlavaFactory.Create(Path.Combine(root, "a"), small, 3);
        var b = MicroLlavaFactory.Create(Path.Combine(root, "b"), small, 3);
        var c = MicroLlavaFactory.Create(Path.Combine(root, "c"), small, 4);
        byte[] Bytes(MicroLlavaCheckpoint k, bool vision) => File.ReadAllBytes(Path.Combine(vision ? k.VisionDirectory : k.ModelDirectory, "model.safetensors"));
        Assert.Equal(Bytes(a, false), Bytes(b, false));
        Assert.Equal(Bytes(a, true), Bytes(b, true));
        Assert.NotEqual(Bytes(a, false), Bytes(c, false));
        Assert.Equal(small.TotalParameters, a.Parameters);
        using var m = LlavaModel.Load(a.ModelDirectory);
        Assert.Equal(64, m.Config.NumImageTokens);
    }

    static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }
}
