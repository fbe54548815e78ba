using System.Text.Json.Nodes;
using Llava.Formats;
using Llava.Formats.Safetensors;
using Llava.Tensors;

namespace Llava.Tests;

/// <summary>`--save-format hf` of `llava train finetune` and `llava merge-lora`: the llava-hf directory loads and gives the original layout's logits.</summary>
public sealed class SaveFormatCommandTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("llava-saveformat-").FullName;
    public void Dispose() => Directory.Delete(dir, true);

    static string BaseModel => Fixtures.TinyPath("original", "llava-v1.5-tiny");
    // No <image> marker: LLaVA's tokenizer_image_token and the llava-hf tokenizer split text around the image differently
    // (an extra "▁" before the newline), so the text is compared without one and the image through its projected features.
    const string Prompt = "USER: What is shown in the picture? ASSISTANT:";

    /// <summary>`llava dump` on the same center-cropped pixels for both layouts: logits_last8 (first 32000 columns) and image_features.</summary>
    (float[] Logits, float[] Image) Dump(string model, string name)
    {
        string outPath = Path.Combine(dir, name + ".safetensors");
        var r = LlavaProcess.Run("dump", "--model", model, "--image", Fixtures.TinyPath("images", "tiny_37x61.png"), "--image-aspect-ratio", "original",
            "--raw-prompt", Prompt, "--out", outPath);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var f = SafetensorsFile.Open(outPath);
        var t = f.Get("logits_last8");
        var all = t.ToFloat32();
        int vocab = (int)t.Shape[1], rows = (int)t.Shape[0];
        var first = new float[rows * 32000];
        for (int i = 0; i < rows; i++) all.AsSpan(i * vocab, 32000).CopyTo(first.AsSpan(i * 32000));
        return (first, f.Get("image_features").ToFloat32());
    }

    static void AssertSameModel((float[] Logits, float[] Image) a, (float[] Logits, float[] Image) b)
    {
        Assert.Equal(a.Image, b.Image);
        Assert.Equal(a.Logits, b.Logits);
    }

    string[] TrainArgs(string mode, string outDir) =>
    [
        "train", mode, "--model", BaseModel, "--data", Fixtures.TinyPath("train", "data", "finetune.json"), "--image-folder", Fixtures.TinyPath("images"),
        "--output-dir", outDir, "--max-steps", "1", "--batch-size", "2", "--learning-rate", "1e-2", "--save-steps", "0", "--seed", "7",
    ];

    [Fact]
    public void Finetune_SaveFormatHf_WritesALlavaHfCheckpoint_WithTheOriginalFormatsLogits()
    {
        string original = Path.Combine(dir, "original"), hf = Path.Combine(dir, "hf");
        var a = LlavaProcess.Run(TrainArgs("finetune", original));
        Assert.True(a.ExitCode == 0, a.Stderr);
        var b = LlavaProcess.Run([.. TrainArgs("finetune", hf), "--save-format", "hf", "--save-dtype", "f32"]);
        Assert.True(b.ExitCode == 0, b.Stderr);

        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(hf, "config.json")))!;
        Assert.Equal("llava", cfg["model_type"]!.GetValue<string>());
        Assert.Equal("float32", cfg["torch_dtype"]!.GetValue<string>());
        Assert.Equal(32000, cfg["image_token_index"]!.GetValue<int>());
        foreach (var f in new[] { "tokenizer.model", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json", "generation_config.json" })
            Assert.True(File.Exists(Path.Combine(hf, f)), f);
        using (var st = SafetensorsFile.Open(Path.Combine(hf, "model.safetensors")))
        {
            Assert.Contains("vision_tower.vision_model.embeddings.patch_embedding.weight", st.Names);
            Assert.All(st.Names, n => Assert.Equal(DType.F32, st.Get(n).DType));
        }
        // Trained the same way (same seed): the two layouts hold the same model.
        AssertSameModel(Dump(original, "ft-original"), Dump(hf, "ft-hf"));
    }

    [Fact]
    public void SaveFormatHf_WithLora_IsRefusedWithAHint()
    {
        var r = LlavaProcess.Run([.. TrainArgs("lora", Path.Combine(dir, "lora")), "--save-format", "hf"]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("merge-lora", r.Stderr);
    }

    [Fact]
    public void MergeLora_SaveFormatHf_EqualsTheOriginalLayoutMerge()
    {
        string adapter = Path.Combine(dir, "adapter");
        var t = LlavaProcess.Run([.. TrainArgs("lora", adapter), "--lora-r", "4", "--lora-alpha", "8"]);
        Assert.True(t.ExitCode == 0, t.Stderr);
        string merged = Path.Combine(dir, "merged"), mergedHf = Path.Combine(dir, "merged-hf");
        var m1 = LlavaProcess.Run("merge-lora", "--model-path", adapter, "--model-base", BaseModel, "--save-model-path", merged);
        Assert.True(m1.ExitCode == 0, m1.Stderr);
        var m2 = LlavaProcess.Run("merge-lora", "--model-path", adapter, "--model-base", BaseModel, "--save-model-path", mergedHf, "--save-format", "hf", "--save-dtype", "f32");
        Assert.True(m2.ExitCode == 0, m2.Stderr);
        Assert.Contains("llava-hf", m2.Stderr);
        Assert.Equal("llava", JsonNode.Parse(File.ReadAllText(Path.Combine(mergedHf, "config.json")))!["model_type"]!.GetValue<string>());
        AssertSameModel(Dump(merged, "m-original"), Dump(mergedHf, "m-hf"));
    }
}
