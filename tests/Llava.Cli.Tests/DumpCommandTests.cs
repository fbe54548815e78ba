using Llava.Formats;
using Llava.Formats.Safetensors;

namespace Llava.Tests;

/// <summary>`llava dump`, the parity contract, run as a process and compared with the reference fixtures.</summary>
public sealed class DumpCommandTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("llava-dump-").FullName;
    public void Dispose() => Directory.Delete(dir, true);

    static string Question => "What is shown in this image?";

    [Theory]
    [InlineData("extreme_ironing__default", "original")]
    [InlineData("synthetic_500x300__pad", "pad")]
    public void HfLayout_WithPromptAndTemplate_MatchesTransformers(string caseId, string aspect)
    {
        var c = ReferenceCase.Get(caseId);
        var outPath = Path.Combine(dir, "hf.safetensors");
        var r = LlavaProcess.Run("dump", "--model", Fixtures.TinyPath("hf"), "--image", Fixtures.TinyPath(c.Image!.Split('/')),
            "--prompt", Question, "--conv-mode", "llava_v1", "--image-aspect-ratio", aspect, "--out", outPath);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var f = SafetensorsFile.Open(outPath);
        Assert.Equal([3L, 336, 336], f.Get("pixel_values").Shape);
        // Decoding and preprocessing are bit-exact with PIL for these files (see Llava.Vision.Tests).
        Assert.InRange(Numerics.MaxAbs(f.Get("pixel_values").ToFloat32(), c.Tensor("pixel_values")), 0, 1e-6);
        Assert.InRange(Numerics.RelativeError(f.Get("image_features").ToFloat32(), c.Tensor("image_features")), 0, 1e-4);
        Assert.Equal(c.InputIdsHf.Select(i => (long)i), f.Get("input_ids").ToInt64());
        Assert.Equal([8L, 32064], f.Get("logits_last8").Shape);
        Assert.InRange(Numerics.RelativeError(f.Get("logits_last8").ToFloat32(), c.Tensor("logits_last")), 0, 1e-4);
        Assert.Equal(c.GreedyIds.Select(i => (long)i), f.Get("generated_ids").ToInt64());
    }

    [Fact]
    public void OriginalLayout_WithRawPrompt_MatchesLlavaCode()
    {
        var c = ReferenceCase.Get("tiny_37x61__pad");
        var outPath = Path.Combine(dir, "orig.safetensors");
        string prompt = ReferenceCase.Root.GetProperty("prompt").GetString()!;
        var r = LlavaProcess.Run("dump", "--model", Fixtures.TinyPath("original", "llava-v1.5-tiny"), "--image", Fixtures.TinyPath(c.Image!.Split('/')),
            "--raw-prompt", prompt, "--out", outPath);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var f = SafetensorsFile.Open(outPath);
        // tokenizer_image_token: −200 placeholder and the extra ▁ (29871) after it.
        Assert.Equal(c.InputIdsOriginal!.Select(i => (long)i), f.Get("input_ids").ToInt64());
        Assert.Contains(-200L, f.Get("input_ids").ToInt64());
        Assert.Equal([8L, 32000], f.Get("logits_last8").Shape);
        Assert.InRange(Numerics.RelativeError(f.Get("logits_last8").ToFloat32(), c.Tensor("original_code_logits_last")), 0, 1e-4);
        Assert.Equal(c.OriginalGreedyIds.Select(i => (long)i), f.Get("generated_ids").ToInt64());
    }

    [Fact]
    public void TwoImageMarkersOneImage_IsOneClearError()
    {
        var r = LlavaProcess.Run("dump", "--model", Fixtures.TinyPath("hf"), "--image", Fixtures.TinyPath("images", "tiny_37x61.png"),
            "--raw-prompt", "USER: <image>\n<image>\nCompare. ASSISTANT:", "--out", Path.Combine(dir, "x.safetensors"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("2 <image> markers", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }
}
