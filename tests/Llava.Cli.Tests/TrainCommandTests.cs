using Llava.Formats;
using Llava.Formats.Safetensors;

namespace Llava.Tests;

/// <summary>`llava train lora` → an unmerged adapter used with --model-base equals `llava merge-lora`'s checkpoint.</summary>
public sealed class TrainCommandTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("llava-train-").FullName;
    public void Dispose() => Directory.Delete(dir, true);

    [Fact]
    public void LoraAdapter_WithModelBase_EqualsMergedCheckpoint()
    {
        string baseModel = Fixtures.TinyPath("original", "llava-v1.5-tiny");
        string adapter = Path.Combine(dir, "adapter");
        var train = LlavaProcess.Run("train", "lora", "--model", baseModel, "--data", Fixtures.TinyPath("train", "data", "finetune.json"),
            "--image-folder", Fixtures.TinyPath("images"), "--output-dir", adapter, "--max-steps", "2", "--batch-size", "2",
            "--lora-r", "4", "--lora-alpha", "8", "--learning-rate", "1e-2", "--save-steps", "0");
        Assert.True(train.ExitCode == 0, train.Stderr);
        Assert.True(File.Exists(Path.Combine(adapter, "adapter_config.json")));
        Assert.True(File.Exists(Path.Combine(adapter, "metrics.jsonl")));

        string merged = Path.Combine(dir, "merged");
        var merge = LlavaProcess.Run("merge-lora", "--model-path", adapter, "--model-base", baseModel, "--save-model-path", merged);
        Assert.True(merge.ExitCode == 0, merge.Stderr);

        string prompt = "USER: <image>\nWhat is shown? ASSISTANT:";
        string image = Fixtures.TinyPath("images", "tiny_37x61.png");
        var a = LlavaProcess.Run("dump", "--model", adapter, "--model-base", baseModel, "--image", image, "--raw-prompt", prompt, "--out", Path.Combine(dir, "a.safetensors"));
        Assert.True(a.ExitCode == 0, a.Stderr);
        var b = LlavaProcess.Run("dump", "--model", merged, "--image", image, "--raw-prompt", prompt, "--out", Path.Combine(dir, "b.safetensors"));
        Assert.True(b.ExitCode == 0, b.Stderr);
        var c = LlavaProcess.Run("dump", "--model", baseModel, "--image", image, "--raw-prompt", prompt, "--out", Path.Combine(dir, "c.safetensors"));
        Assert.True(c.ExitCode == 0, c.Stderr);
        using var fa = SafetensorsFile.Open(Path.Combine(dir, "a.safetensors"));
        using var fb = SafetensorsFile.Open(Path.Combine(dir, "b.safetensors"));
        using var fc = SafetensorsFile.Open(Path.Combine(dir, "c.safetensors"));
        Assert.Equal(fb.Get("logits_last8").ToFloat32(), fa.Get("logits_last8").ToFloat32());
        // Training changed something: the adapter's logits differ from the base model's.
        Assert.True(Numerics.RelativeError(fa.Get("logits_last8").ToFloat32(), fc.Get("logits_last8").ToFloat32()) > 1e-4);
    }
}
