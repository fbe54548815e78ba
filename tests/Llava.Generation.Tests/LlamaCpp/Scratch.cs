using Llava.Models.Gguf;
using Llava.Models.Llava;
using LLama.Native;

namespace Llava.Tests.LlamaCpp;

public sealed class LlamaCppScratch(ITestOutputHelper output)
{
    [Fact]
    public void Explore()
    {
        using var dir = new TempDir();
        var r = GgufExporter.Export(Fixtures.TinyPath("original", "llava-v1.5-tiny"), dir.Path, new GgufExportOptions { OutputType = GgufOutputType.F32 });
        var c = ReferenceCase.Get("text_only");
        var ids = c.InputIdsOriginal!;
        var expected = c.Tensor("original_code_logits_last").AsSpan(7 * 32000, 32000).ToArray();
        using var m = LlavaModel.Load(r.TextModel, new LlavaLoadOptions { Mmproj = r.MmprojPath });
        var s = new Llava.Generation.LlavaSession(m, 512);
        var ours = s.Prefill(ids, [], 1);
        output.WriteLine($"ids {ids.Length}: ours vs ref {Stats.Rel(ours, expected):E3}");
        var d = LlamaCppSettings.LlamaCppDefaults;
        output.WriteLine($"defaults: {d}");
        foreach (var st in new[] { LlamaCppSettings.Exact, d, LlamaCppSettings.Exact with { FlashAttention = LLamaFlashAttentionType.LLAMA_FLASH_ATTENTION_TYPE_ENABLED },
                     LlamaCppSettings.Exact with { TypeK = GGMLType.GGML_TYPE_F16, TypeV = GGMLType.GGML_TYPE_F16 }, LlamaCppSettings.Exact with { UBatch = 1 } })
        {
            var l = LlamaCppRunner.LastLogits(r.TextModel, ids, st);
            output.WriteLine($"{st}: vs ref {Stats.Rel(l, expected):E3}, vs ours {Stats.Rel(l, ours):E3}");
        }
        foreach (int n in new[] { 1, 2, 4, 8, ids.Length })
        {
            var p = ids.Take(n).ToArray();
            s.Reset();
            var o = s.Prefill(p, [], 1);
            var l = LlamaCppRunner.LastLogits(r.TextModel, p);
            output.WriteLine($"prompt {n}: llama vs ours {Stats.Rel(l, o):E3}; max|o| {o.Max(Math.Abs):F3}");
        }
        // intermediate tensors, single token
        using var run = new LlamaCppRunner(r.TextModel, null, name => true);
        run.Feed(ids.Take(1).ToArray());
        foreach (var (k, v) in run.Recorded) output.WriteLine($"{k}: {v.Length} rms {Math.Sqrt(v.Select(x => (double)x * x).Average()):E3}");
    }
}
