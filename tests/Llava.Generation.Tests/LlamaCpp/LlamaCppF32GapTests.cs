using LLama.Abstractions;
using LLama.Common;
using LLama.Extensions;
using LLama.Native;
using Llava.Models.Gguf;
using Llava.Models.Llava;

namespace Llava.Tests.LlamaCpp;

/// <summary>
/// Where the 1.24e-3 gap between llama.cpp and LLaVA's logits on the fixture's F32 export (GgufExportOracleTests)
/// comes from: llama.cpp's flash attention, which llama_context_default_params() leaves on "auto" (enabled on CPU),
/// and which casts K and V to f16 even from an f32 KV cache (llama-graph.cpp build_attn_mha: "if (k->type ==
/// GGML_TYPE_F32) k = ggml_cast(ctx0, k, GGML_TYPE_F16)", likewise V) and accumulates in f16 on the CPU. With flash
/// attention disabled and an f32 cache, llama.cpp matches LLaVA to ~1e-6, like our engine. Nothing in the export
/// (metadata, eps, RoPE) is wrong.
/// </summary>
public sealed class LlamaCppF32GapTests(ITestOutputHelper output)
{
    [Fact]
    public void FixtureF32Export_LlamaCppMatchesLlava_ToF32Precision_OnceFlashAttentionIsOff()
    {
        using var dir = new TempDir();
        var r = GgufExporter.Export(Fixtures.TinyPath("original", "llava-v1.5-tiny"), dir.Path, new GgufExportOptions { OutputType = GgufOutputType.F32 });
        var c = ReferenceCase.Get("text_only");
        var ids = c.InputIdsOriginal!;
        var reference = c.Tensor("original_code_logits_last").AsSpan(7 * 32000, 32000).ToArray();   // last prompt position
        using var model = LlavaModel.Load(r.TextModel, new LlavaLoadOptions { Mmproj = r.MmprojPath });
        var ours = new Llava.Generation.LlavaSession(model, 512).Prefill(ids, [], 1);
        double oursErr = Stats.Rel(ours, reference);
        output.WriteLine($"our engine on the F32 GGUF vs LLaVA ({ids.Length} tokens): {oursErr:E2}");

        // What LLamaSharp passes when only TypeK/TypeV are set (as Models.Tests' LlamaCppOracle does).
        ((IContextParams)new ModelParams(r.TextModel) { TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32 }).ToLlamaContextParams(out var lp);
        output.WriteLine($"LLamaSharp ModelParams{{TypeK=F32,TypeV=F32}} → type_k {lp.type_k}, type_v {lp.type_v}, flash_attn {lp.llama_flash_attn_type}");
        var defaults = LlamaCppSettings.LlamaCppDefaults;
        output.WriteLine($"llama_context_default_params(): {defaults}");

        var fa = LLamaFlashAttentionType.LLAMA_FLASH_ATTENTION_TYPE_ENABLED;
        var f16 = GGMLType.GGML_TYPE_F16;
        var runs = new (string What, LlamaCppSettings S)[]
        {
            ("exact: f32 KV, flash attention off", LlamaCppSettings.Exact),
            ("llama.cpp defaults", defaults),
            ("f32 KV, flash attention on", LlamaCppSettings.Exact with { FlashAttention = fa }),
            ("f16 KV, flash attention off", LlamaCppSettings.Exact with { TypeK = f16, TypeV = f16 }),
            ("f32 KV, flash attention off, ubatch 1", LlamaCppSettings.Exact with { UBatch = 1, Batch = 512 }),
        };
        var err = new Dictionary<string, double>();
        foreach (var (what, s) in runs)
        {
            var l = LlamaCppRunner.LastLogits(r.TextModel, ids, s);
            err[what] = Stats.Rel(l, reference);
            output.WriteLine($"llama.cpp, {what} ({s}): vs LLaVA {err[what]:E2}, vs our engine {Stats.Rel(l, ours):E2}");
        }

        // Layer by layer, one prompt: the first tensor that differs between flash attention on and off is the
        // attention output of layer 0; everything before it (norms, Q/K/V after RoPE) is bit-identical.
        var names = new List<string>();
        Dictionary<string, float[]> Record(LlamaCppSettings s)
        {
            using var run = new LlamaCppRunner(r.TextModel, s, n => true);
            run.Feed(ids);
            if (names.Count == 0) names.AddRange(run.Recorded.Keys);
            return new Dictionary<string, float[]>(run.Recorded);
        }
        var off = Record(LlamaCppSettings.Exact);
        var on = Record(LlamaCppSettings.Exact with { FlashAttention = fa });
        foreach (var n in new[] { "attn_norm-0", "Qcur-0", "Kcur-0", "Vcur-0", "kqv_out-0", "attn_out-0", "l_out-0", "kqv_out-1", "l_out-1", "result_output" })
            if (off.TryGetValue(n, out var a) && on.TryGetValue(n, out var b) && a.Length == b.Length)
                output.WriteLine($"  {n,-14} flash attention on vs off: rel {Stats.Rel(b, a):E2}");
        Assert.Equal(0, Stats.Rel(on["Qcur-0"], off["Qcur-0"]));
        Assert.True(Stats.Rel(on["kqv_out-0"], off["kqv_out-0"]) > 1e-5, "flash attention should change the attention output");

        Assert.InRange(oursErr, 0, 1e-5);
        Assert.InRange(err["exact: f32 KV, flash attention off"], 0, 1e-5);            // measured 1.7e-6
        Assert.InRange(err["f32 KV, flash attention on"], 5e-4, 3e-3);                   // measured 1.24e-3: the reported gap
        Assert.InRange(err["llama.cpp defaults"], 5e-4, 3e-3);
    }
}
