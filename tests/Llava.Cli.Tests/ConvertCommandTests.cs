using Llava.Formats.Gguf;
using Llava.Tensors;

namespace Llava.Tests;

/// <summary>`llava convert` run as a process on the tiny fixture.</summary>
public sealed class ConvertCommandTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("llava-convert-").FullName;
    public void Dispose() => Directory.Delete(dir, true);

    static string Original => Fixtures.TinyPath("original", "llava-v1.5-tiny");

    [Fact]
    public void Q4_K_M_WritesBothFiles_AndSummary()
    {
        var outDir = Path.Combine(dir, "out");
        var r = LlavaProcess.Run("convert", "--model", Original, "--outtype", "q4_k_m", "--out-dir", outDir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var text = Path.Combine(outDir, "llava-v1.5-tiny-q4_k_m.gguf");
        var mmproj = Path.Combine(outDir, "mmproj-llava-v1.5-tiny-f16.gguf");
        Assert.Equal([Path.GetFileName(text), Path.GetFileName(mmproj)], Directory.GetFiles(outDir).Select(Path.GetFileName).Order());
        using (var g = GgufFile.Open(text))
        {
            Assert.Equal(15L, g.Metadata.GetInt("general.file_type"));   // LLAMA_FTYPE_MOSTLY_Q4_K_M
            // Hidden 64: llama.cpp's fallbacks (Q4_K → Q5_0, Q6_K → Q8_0, ffn_down's 172 → F16).
            Assert.Equal(GgmlType.Q5_0, g.GetInfo("blk.0.attn_q.weight").Type);
            Assert.Equal(GgmlType.Q8_0, g.GetInfo("blk.1.attn_v.weight").Type);
            Assert.Equal(GgmlType.Q8_0, g.GetInfo("output.weight").Type);
            Assert.Equal(GgmlType.F16, g.GetInfo("blk.0.ffn_down.weight").Type);
            Assert.Equal(GgmlType.F32, g.GetInfo("blk.0.attn_norm.weight").Type);
        }
        using (var g = GgufFile.Open(mmproj))
        {
            Assert.Equal("clip", g.Metadata.GetString("general.architecture"));
            Assert.Equal(GgmlType.F16, g.GetInfo("mm.0.weight").Type);
        }
        // The summary: both files with their sizes, the type counts, the fallbacks, and the time.
        Assert.Contains($"text model: {text}", r.Stdout);
        Assert.Contains($"mmproj: {mmproj}", r.Stdout);
        Assert.Contains($"({new FileInfo(text).Length:N0} bytes)", r.Stdout);
        Assert.Contains($"({new FileInfo(mmproj).Length:N0} bytes)", r.Stdout);
        Assert.Contains("Q5_0 ×", r.Stdout);
        Assert.Contains("tensor(s) took a shape fallback", r.Stdout);
        Assert.Contains("row length 172 is not a multiple of 256 (Q4_K) → F16: blk.0.ffn_down.weight", r.Stdout);
        // Layer 1 of 2 is a use_more_bits layer: its attn_v and ffn_down were Q6_K before the fallback.
        Assert.Contains("row length 64 is not a multiple of 256 (Q6_K) → Q8_0: blk.1.attn_v.weight", r.Stdout);
        Assert.Contains("row length 172 is not a multiple of 256 (Q6_K) → F16: blk.1.ffn_down.weight", r.Stdout);
        Assert.Matches(@"converted in \d+\.\d\ds", r.Stdout);
        Assert.DoesNotContain(".partial", string.Join(" ", Directory.GetFiles(outDir)));
    }

    [Fact]
    public void F32Mmproj_AndHfLayout()
    {
        var r = LlavaProcess.Run("convert", "--model", Fixtures.TinyPath("hf"), "--outtype", "Q8_0", "--mmproj-type", "f32", "--out-dir", dir, "--verbose");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.True(File.Exists(Path.Combine(dir, "hf-q8_0.gguf")), r.Stdout);
        using var g = GgufFile.Open(Path.Combine(dir, "mmproj-hf-f32.gguf"));
        Assert.Equal(GgmlType.F32, g.GetInfo("mm.2.weight").Type);
        Assert.Contains("blk.1.ffn_up.weight", r.Stdout);   // --verbose lists every tensor
    }

    [Theory]
    [InlineData("q3_k_xl", "--outtype 'q3_k_xl' is not supported; choose one of f32, f16, bf16, q8_0")]
    [InlineData("q4_k_m", "--mmproj-type must be f16 or f32, not 'q8_0'", "--mmproj-type", "q8_0")]
    public void BadTypes_AreOneClearError(string outType, string message, params string[] extra)
    {
        var r = LlavaProcess.Run(["convert", "--model", Original, "--outtype", outType, "--out-dir", dir, .. extra]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.Empty(Directory.GetFiles(dir));
    }

    [Fact]
    public void ProjectorOnlyCheckpoint_IsOneClearError()
    {
        var model = Path.Combine(dir, "projector-only");
        Directory.CreateDirectory(model);
        foreach (var f in new[] { "config.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json" })
            File.Copy(Path.Combine(Original, f), Path.Combine(model, f));
        File.Copy(Fixtures.TinyPath("original-bin", "mm_projector.bin"), Path.Combine(model, "mm_projector.bin"));
        var outDir = Path.Combine(dir, "out");
        var r = LlavaProcess.Run("convert", "--model", model, "--outtype", "q8_0", "--out-dir", outDir,
            "--vision-tower", Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("error:", r.Stderr);
        Assert.Contains("projector-only checkpoint cannot be exported", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.False(Directory.Exists(outDir) && Directory.GetFiles(outDir).Length > 0);
    }

    [Fact]
    public void MissingModelDirectory_IsOneClearError()
    {
        var r = LlavaProcess.Run("convert", "--model", Path.Combine(dir, "nope"), "--out-dir", dir);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("model directory not found", r.Stderr);
    }
}
