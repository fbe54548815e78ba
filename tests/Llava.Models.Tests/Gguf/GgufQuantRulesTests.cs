using LLama.Native;
using Llava.Formats.Gguf;
using Llava.Models.Gguf;
using Llava.Tensors;

namespace Llava.Tests.Gguf;

/// <summary>The tiny fixture's F32 GGUF export, written once for the tests that quantize it.</summary>
public sealed class TinyF32Gguf : IDisposable
{
    readonly TempDir dir = new();
    public string Root => dir.Path;
    public string Model => Fixtures.TinyPath("original", "llava-v1.5-tiny");
    public string F32 { get; }
    public TinyF32Gguf()
    {
        F32 = Path.Combine(dir.Path, "tiny-f32.gguf");
        GgufExporter.ExportTextModel(Model, F32, new GgufExportOptions { OutputType = GgufOutputType.F32 });
    }
    public void Dispose() => dir.Dispose();
}

/// <summary>
/// Which type each tensor gets: llama.cpp's llama_tensor_get_type rules on a 7B/70B-shaped table, and on the tiny
/// fixture (hidden 64, ffn 172: no row is a multiple of 256, ffn_down's 172 not even of 32) against llama.cpp's own
/// quantizer, which exercises every shape fallback.
/// </summary>
public sealed class GgufQuantRulesTests(TinyF32Gguf tiny, ITestOutputHelper output) : IClassFixture<TinyF32Gguf>
{
    static GgmlType Type(GgufOutputType t, string name, long ne0, long ne1, LlamaQuantShape s, bool pure = false) =>
        LlamaQuantRules.Choose(t, pure, name, [ne0, ne1], s, out _);

    [Fact]
    public void MixRules_Llama7B_Shape()
    {
        var s = new LlamaQuantShape(32, 32, 32, TiedEmbeddings: false);
        // use_more_bits for 32 layers: 0-3, 28-31 and every third from 6: 6, 9, ..., 27.
        int[] more = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];
        for (int i = 0; i < 32; i++)
        {
            Assert.Equal(more.Contains(i), LlamaQuantRules.UseMoreBits(i, 32));
            var want = more.Contains(i) ? GgmlType.Q6_K : GgmlType.Q4_K;
            Assert.Equal(want, Type(GgufOutputType.Q4_K_M, $"blk.{i}.attn_v.weight", 4096, 4096, s));
            Assert.Equal(want, Type(GgufOutputType.Q4_K_M, $"blk.{i}.ffn_down.weight", 11008, 4096, s));
            Assert.Equal(GgmlType.Q4_K, Type(GgufOutputType.Q4_K_M, $"blk.{i}.attn_q.weight", 4096, 4096, s));
            Assert.Equal(more.Contains(i) ? GgmlType.Q6_K : GgmlType.Q5_K, Type(GgufOutputType.Q5_K_M, $"blk.{i}.ffn_down.weight", 11008, 4096, s));
            Assert.Equal(i < 4 ? GgmlType.Q5_K : GgmlType.Q4_K, Type(GgufOutputType.Q4_K_S, $"blk.{i}.attn_v.weight", 4096, 4096, s));
            Assert.Equal(i < 4 ? GgmlType.Q5_K : GgmlType.Q4_K, Type(GgufOutputType.Q4_K_S, $"blk.{i}.ffn_down.weight", 11008, 4096, s));
        }
        Assert.Equal(GgmlType.Q6_K, Type(GgufOutputType.Q4_K_M, "output.weight", 4096, 32000, s));
        Assert.Equal(GgmlType.Q4_K, Type(GgufOutputType.Q4_K_M, "token_embd.weight", 4096, 32000, s));
        Assert.Equal(GgmlType.Q6_K, Type(GgufOutputType.Q4_0, "output.weight", 4096, 32000, s));
        Assert.Equal(GgmlType.Q8_0, Type(GgufOutputType.Q8_0, "output.weight", 4096, 32000, s));
        Assert.Equal(GgmlType.Q4_0, Type(GgufOutputType.Q4_0, "output.weight", 4096, 32000, s, pure: true));
        Assert.Equal(GgmlType.Q4_K, Type(GgufOutputType.Q4_K, "output.weight", 4096, 32000, s));   // Q4_K = --pure Q4_K_S
        Assert.Equal(GgmlType.F32, Type(GgufOutputType.Q4_K_M, "blk.0.attn_norm.weight", 4096, 1, s));
        // Q2_K: attn_v Q3_K without GQA, Q4_K with n_gqa >= 4; ffn_down and attn_output Q3_K.
        Assert.Equal(GgmlType.Q3_K, Type(GgufOutputType.Q2_K, "blk.5.attn_v.weight", 4096, 4096, s));
        Assert.Equal(GgmlType.Q4_K, Type(GgufOutputType.Q2_K, "blk.5.attn_v.weight", 4096, 1024, s with { KvHeads = 8 }));
        Assert.Equal(GgmlType.Q3_K, Type(GgufOutputType.Q2_K, "blk.5.ffn_down.weight", 11008, 4096, s));
        Assert.Equal(GgmlType.Q3_K, Type(GgufOutputType.Q2_K, "blk.5.attn_output.weight", 4096, 4096, s));
        Assert.Equal(GgmlType.Q2_K, Type(GgufOutputType.Q2_K, "blk.5.ffn_up.weight", 4096, 11008, s));
        // 70B (80 layers with GQA): attn_v Q3_K/Q4_K are bumped to Q5_K.
        var s70 = new LlamaQuantShape(80, 64, 8, false);
        Assert.Equal(GgmlType.Q5_K, Type(GgufOutputType.Q4_K_M, "blk.40.attn_v.weight", 8192, 1024, s70));
        Assert.Equal(GgmlType.Q5_K, Type(GgufOutputType.Q2_K, "blk.40.attn_v.weight", 8192, 1024, s70));
        // Tied embeddings (no output.weight): token_embd is quantized as the output would be.
        Assert.Equal(GgmlType.Q6_K, Type(GgufOutputType.Q4_K_M, "token_embd.weight", 4096, 32000, s with { TiedEmbeddings = true }));
    }

    [Theory]
    [InlineData(GgmlType.Q4_K, 64, GgmlType.Q5_0)]
    [InlineData(GgmlType.Q4_K, 172, GgmlType.F16)]
    [InlineData(GgmlType.Q5_K, 64, GgmlType.Q5_1)]
    [InlineData(GgmlType.Q6_K, 64, GgmlType.Q8_0)]
    [InlineData(GgmlType.Q2_K, 96, GgmlType.Q4_0)]
    [InlineData(GgmlType.Q3_K, 64, GgmlType.Q4_0)]
    [InlineData(GgmlType.Q4_K, 512, GgmlType.Q4_K)]
    [InlineData(GgmlType.Q4_0, 172, GgmlType.F16)]   // llama.cpp refuses; we write F16 as convert_hf_to_gguf.py does
    [InlineData(GgmlType.Q8_0, 96, GgmlType.Q8_0)]
    public void ShapeFallback(GgmlType target, long rowLength, GgmlType want)
    {
        Assert.Equal(want, LlamaQuantRules.Fallback(target, rowLength, out var note));
        Assert.Equal(want == target, note is null);
    }

    (LLamaFtype, bool) Llama(GgufOutputType t) => t switch
    {
        GgufOutputType.Q2_K => (LLamaFtype.MOSTLY_Q2_K, false),
        GgufOutputType.Q3_K => (LLamaFtype.MOSTLY_Q3_K_S, true),
        GgufOutputType.Q4_K => (LLamaFtype.MOSTLY_Q4_K_S, true),
        GgufOutputType.Q5_K => (LLamaFtype.MOSTLY_Q5_K_S, true),
        GgufOutputType.Q6_K => (LLamaFtype.MOSTLY_Q6_K, false),
        GgufOutputType.Q4_K_S => (LLamaFtype.MOSTLY_Q4_K_S, false),
        GgufOutputType.Q4_K_M => (LLamaFtype.MOSTLY_Q4_K_M, false),
        GgufOutputType.Q5_K_M => (LLamaFtype.MOSTLY_Q5_K_M, false),
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    [Theory]
    [InlineData(GgufOutputType.Q4_K_M)]
    [InlineData(GgufOutputType.Q4_K)]
    [InlineData(GgufOutputType.Q2_K)]
    [InlineData(GgufOutputType.Q5_K_M)]
    [InlineData(GgufOutputType.Q6_K)]
    public void TinyFixture_KQuantFallbacks_SameTypesAndBytesAsLlamaQuantize(GgufOutputType type)
    {
        var ours = Path.Combine(tiny.Root, $"tiny-{type.Name()}.gguf");
        var report = GgufExporter.ExportTextModel(tiny.Model, ours, new GgufExportOptions { OutputType = type });
        var theirs = Path.Combine(tiny.Root, $"tiny-llama-{type.Name()}.gguf");
        var (ftype, pure) = Llama(type);
        Assert.True(LlamaCppOracle.Quantize(tiny.F32, theirs, ftype, pure), "llama.cpp's quantizer failed");
        var types = GgufQuantizedExportTests.AssertSameTensors(ours, theirs);
        // Hidden 64 / ffn 172: no tensor keeps a K type; every quantized one took a fallback and the report says so.
        Assert.DoesNotContain(types.Values, t => t is GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K);
        Assert.Equal(GgmlType.F16, types["blk.0.ffn_down.weight"]);
        // (output.weight may go to Q8_0 by the mix rule itself, which is not a fallback.)
        Assert.All(report.Tensors.Where(t => t.Type != GgmlType.F32 && t.Name != "output.weight"), t => Assert.NotNull(t.Fallback));
        output.WriteLine($"{type}: {string.Join(", ", report.TypeCounts.Select(c => $"{c.Type} ×{c.Count}"))}; " +
                         string.Join("; ", report.Fallbacks.GroupBy(f => f.Fallback).Select(g => $"{g.Key} ({g.Count()})")));
    }

    [Fact]
    public void TinyFixture_Q4_0_LlamaCppRefusesRow172_WeWriteF16_AndItRuns()
    {
        var theirs = Path.Combine(tiny.Root, "tiny-llama-q4_0.gguf");
        Assert.False(LlamaCppOracle.Quantize(tiny.F32, theirs, LLamaFtype.MOSTLY_Q4_0, false));   // "no tensor type fallback is defined for type q4_0"
        var ours = Path.Combine(tiny.Root, "tiny-q4_0.gguf");
        var report = GgufExporter.ExportTextModel(tiny.Model, ours, new GgufExportOptions { OutputType = GgufOutputType.Q4_0 });
        using (var g = GgufFile.Open(ours))
        {
            Assert.Equal(GgmlType.F16, g.GetInfo("blk.1.ffn_down.weight").Type);
            Assert.Equal(GgmlType.Q4_0, g.GetInfo("blk.1.ffn_up.weight").Type);
            Assert.Equal(GgmlType.Q8_0, g.GetInfo("output.weight").Type);   // Q6_K for the output, 64 % 256 ≠ 0 → Q8_0
            Assert.Equal(2L, g.Metadata.GetInt("general.file_type"));
        }
        Assert.Equal(["blk.0.ffn_down.weight", "blk.1.ffn_down.weight", "output.weight"], report.Fallbacks.Select(f => f.Name));
        var (logits, vocab) = LlamaCppOracle.LastLogits(ours, [1, 450, 4996, 17354]);
        Assert.Equal(32000, vocab);
        Assert.All(logits, x => Assert.True(float.IsFinite(x)));
    }

    [Fact]
    public void MmprojStaysFloat_AndQuantizedMmprojIsRefused()
    {
        var (text, mmproj) = GgufExporter.Export(tiny.Model, Path.Combine(tiny.Root, "pair"), new GgufExportOptions { OutputType = GgufOutputType.Q8_0 });
        Assert.EndsWith("llava-v1.5-tiny-q8_0.gguf", text);
        Assert.EndsWith("mmproj-llava-v1.5-tiny-f16.gguf", mmproj);
        using (var g = GgufFile.Open(mmproj))
        {
            Assert.Equal(GgmlType.F16, g.GetInfo("v.blk.0.attn_q.weight").Type);
            Assert.Equal(1L, g.Metadata.GetInt("general.file_type"));
        }
        var r = GgufExporter.Export(tiny.Model, Path.Combine(tiny.Root, "pair32"), new GgufExportOptions { OutputType = GgufOutputType.Q4_K_M, MmprojType = GgufOutputType.F32 });
        Assert.EndsWith("mmproj-llava-v1.5-tiny-f32.gguf", r.MmprojPath);
        Assert.Equal(GgmlType.F32, r.Mmproj.Tensors.Single(t => t.Name == "mm.0.weight").Type);
        Assert.Throws<ArgumentException>(() => GgufExporter.Export(tiny.Model, tiny.Root, new GgufExportOptions { MmprojType = GgufOutputType.Q8_0 }));
    }

    [Fact]
    public void Progress_ReportsEveryTensorAndBytes()
    {
        var events = new List<GgufExportProgress>();
        var path = Path.Combine(tiny.Root, "progress.gguf");
        var report = GgufExporter.ExportTextModel(tiny.Model, path, new GgufExportOptions { OutputType = GgufOutputType.Q8_0, Progress = events.Add });
        Assert.Equal(report.Tensors.Select(t => t.Name), events.Select(e => e.Tensor).Distinct());
        Assert.All(events, e => Assert.Equal(report.Tensors.Sum(t => t.Bytes), e.BytesTotal));
        Assert.Equal(events[^1].BytesTotal, events[^1].BytesDone);
        Assert.True(events.Zip(events.Skip(1)).All(p => p.First.BytesDone <= p.Second.BytesDone));
        Assert.Equal(report.Tensors.Count, events[^1].TensorIndex);
    }
}
