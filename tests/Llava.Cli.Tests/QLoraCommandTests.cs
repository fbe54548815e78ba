using System.Text.Json.Nodes;

namespace Llava.Tests;

/// <summary>`llava train lora --bits N --lora-dropout p`: QLoRA with dropout runs, reports the frozen base's memory and writes its adapter.</summary>
public sealed class QLoraCommandTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("llava-qlora-").FullName;
    public void Dispose() => Directory.Delete(dir, true);

    [Fact]
    public void Lora_Bits4_WithDropout_TrainsAndReportsMemory()
    {
        string outDir = Path.Combine(dir, "qlora");
        var r = LlavaProcess.Run("train", "lora", "--model", Fixtures.TinyPath("original", "llava-v1.5-tiny"), "--data", Fixtures.TinyPath("train", "data", "finetune.json"),
            "--image-folder", Fixtures.TinyPath("images"), "--output-dir", outDir, "--max-steps", "1", "--batch-size", "2",
            "--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0.1", "--bits", "4", "--save-steps", "0");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("QLoRA 4-bit", r.Stderr);
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "adapter_config.json")))!;
        Assert.Equal(0.1, cfg["lora_dropout"]!.GetValue<double>(), 6);
        Assert.True(File.Exists(Path.Combine(outDir, "adapter_model.safetensors")));
    }

    [Fact]
    public void Bits_WithFinetune_IsRejected()
    {
        var r = LlavaProcess.Run("train", "finetune", "--model", Fixtures.TinyPath("original", "llava-v1.5-tiny"), "--data", Fixtures.TinyPath("train", "data", "finetune.json"),
            "--output-dir", Path.Combine(dir, "x"), "--bits", "8");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--bits", r.Stderr);
    }
}
