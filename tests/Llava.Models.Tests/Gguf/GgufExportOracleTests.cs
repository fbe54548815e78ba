using Llava.Formats.Gguf;
using Llava.Models.Gguf;

namespace Llava.Tests.Gguf;

/// <summary>
/// The exported text model run by llama.cpp (an independent implementation) must reproduce LLaVA's own logits:
/// this checks the tensor names, the q/k RoPE permutation, the hparams and the vocabulary in one go.
/// </summary>
public sealed class GgufExportOracleTests(ITestOutputHelper output)
{
    static string Original => Fixtures.TinyPath("original", "llava-v1.5-tiny");
    static string Hf => Fixtures.TinyPath("hf");

    static float[] Row(float[] all, int rows, int row)
    {
        int n = all.Length / rows;
        return all.AsSpan(row * n, n).ToArray();
    }

    [Theory]
    // With llama.cpp's attention exact (f32 KV cache, flash attention off; its CPU flash attention computes in f16 and
    // alone costs 1.24e-3 here, see Llava.Generation.Tests/LlamaCpp/LlamaCppF32GapTests) F32 agrees to rounding.
    // F16 also carries llama.cpp's f16 rounding of activations before F16 matmuls.
    [InlineData(GgufOutputType.F32, 1e-5)]
    [InlineData(GgufOutputType.F16, 1e-3)]
    public void OriginalLayout_TextModel_InLlamaCpp_MatchesLlavaLogits(GgufOutputType type, double bound)
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "text.gguf");
        GgufExporter.ExportTextModel(Original, path, new GgufExportOptions { OutputType = type });

        var c = ReferenceCase.Get("text_only");
        var ids = c.InputIdsOriginal!;
        var (logits, vocab) = LlamaCppOracle.LastLogits(path, ids);
        Assert.Equal(32000, vocab);
        // Row 7 of original_code_logits_last is the last prompt position.
        var expected = Row(c.Tensor("original_code_logits_last"), 8, 7);
        double rel = Numerics.RelativeError(logits, expected);
        output.WriteLine($"{type}: llama.cpp vs LLaVA last-position logits, relative error {rel:E3} over {ids.Length} tokens");
        Assert.True(rel <= bound, $"relative error {rel:E3} > {bound}");
        Assert.Equal(Array.IndexOf(expected, expected.Max()), Array.IndexOf(logits, logits.Max()));
    }

    [Fact]
    public void HfLayout_PaddedVocab_LoadsInLlamaCpp_AndMatchesTransformersLogits()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "text.gguf");
        GgufExporter.ExportTextModel(Hf, path, new GgufExportOptions { OutputType = GgufOutputType.F32 });

        var c = ReferenceCase.Get("text_only");
        var (logits, vocab) = LlamaCppOracle.LastLogits(path, c.InputIdsHf);
        Assert.Equal(32064, vocab);
        var expected = Row(c.Tensor("logits_last"), 8, 7);
        double rel = Numerics.RelativeError(logits, expected);
        output.WriteLine($"llava-hf F32: llama.cpp vs transformers last-position logits over 32064 ids, relative error {rel:E3}");
        Assert.True(rel <= 1e-5, $"relative error {rel:E3}");   // exact attention settings, as above
    }
}
