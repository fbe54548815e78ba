using LLama.Native;
using Llava.Formats;
using Llava.Formats.Gguf;
using Llava.Models.Gguf;
using Llava.Tensors;
using Llava.Tensors.Quantization;

namespace Llava.Tests.Gguf;

/// <summary>
/// Quantized text-model exports of a checkpoint with K-quant-friendly shapes (<see cref="SyntheticLlama"/>), checked
/// three ways against llama.cpp: (1) llama.cpp's own quantizer (llama_model_quantize, as llama-quantize runs it) on
/// our F32 export produces the same file body: every tensor's name, type, dims and bytes; (2) each quantized tensor
/// decodes exactly as GgmlQuant.Dequantize(QuantizeReference(original)); (3) llama.cpp runs the quantized model and
/// greedily picks the F32 model's tokens wherever the F32 top-1/top-2 gap exceeds twice the measured logit noise.
/// </summary>
public sealed class GgufQuantizedExportTests(SyntheticLlama model, ITestOutputHelper output) : IClassFixture<SyntheticLlama>
{
    /// <summary>The llama-quantize invocation our type corresponds to.</summary>
    static (LLamaFtype Ftype, bool Pure) LlamaQuantize(GgufOutputType t, bool pure) => t switch
    {
        GgufOutputType.Q8_0 => (LLamaFtype.MOSTLY_Q8_0, pure),
        GgufOutputType.Q4_0 => (LLamaFtype.MOSTLY_Q4_0, pure),
        GgufOutputType.Q4_1 => (LLamaFtype.MOSTLY_Q4_1, pure),
        GgufOutputType.Q5_0 => (LLamaFtype.MOSTLY_Q5_0, pure),
        GgufOutputType.Q5_1 => (LLamaFtype.MOSTLY_Q5_1, pure),
        GgufOutputType.Q2_K => (LLamaFtype.MOSTLY_Q2_K, pure),
        GgufOutputType.Q3_K => (LLamaFtype.MOSTLY_Q3_K_S, true),
        GgufOutputType.Q4_K => (LLamaFtype.MOSTLY_Q4_K_S, true),
        GgufOutputType.Q5_K => (LLamaFtype.MOSTLY_Q5_K_S, true),
        GgufOutputType.Q6_K => (LLamaFtype.MOSTLY_Q6_K, pure),
        GgufOutputType.Q4_K_S => (LLamaFtype.MOSTLY_Q4_K_S, pure),
        GgufOutputType.Q4_K_M => (LLamaFtype.MOSTLY_Q4_K_M, pure),
        GgufOutputType.Q5_K_M => (LLamaFtype.MOSTLY_Q5_K_M, pure),
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>Asserts that two GGUF files hold the same tensors (names, types, dims, bytes) and returns the ours-file's tensor types.</summary>
    internal static Dictionary<string, GgmlType> AssertSameTensors(string ours, string theirs)
    {
        using var a = GgufFile.Open(ours);
        using var b = GgufFile.Open(theirs);
        Assert.Equal(b.Tensors.Select(t => t.Name).Order(), a.Tensors.Select(t => t.Name).Order());
        foreach (var tb in b.Tensors)
        {
            var ta = a.GetInfo(tb.Name);
            Assert.True(tb.Type == ta.Type, $"{tb.Name}: ours {ta.Type}, llama.cpp {tb.Type}");
            Assert.Equal(tb.Dimensions, ta.Dimensions);
            Assert.True(tb.Bytes.SequenceEqual(ta.Bytes), $"{tb.Name} ({ta.Type}): bytes differ from llama.cpp's quantizer");
        }
        Assert.Equal(b.Metadata.GetInt("general.file_type"), a.Metadata.GetInt("general.file_type"));
        return a.Tensors.ToDictionary(t => t.Name, t => t.Type);
    }

    string Export(GgufOutputType type, bool pure = false)
    {
        var path = Path.Combine(model.Root, $"{SyntheticLlama.Name}-{type.Name()}{(pure ? "-pure" : "")}.gguf");
        if (!File.Exists(path))
        {
            var r = GgufExporter.ExportTextModel(model.Model, path, new GgufExportOptions { OutputType = type, Pure = pure });
            output.WriteLine($"exported {Path.GetFileName(path)}: {r.FileBytes / 1048576.0:F2} MiB, {r.BitsPerWeight:F2} bits/weight, {r.Elapsed.TotalSeconds:F2}s");
        }
        return path;
    }

    [Theory]
    [InlineData(GgufOutputType.Q8_0, false)]
    [InlineData(GgufOutputType.Q4_0, false)]
    [InlineData(GgufOutputType.Q4_K, false)]
    [InlineData(GgufOutputType.Q4_K_M, false)]
    [InlineData(GgufOutputType.Q4_0, true)]
    public void SameBytesAsLlamaQuantize_AndReferenceCodecRoundTrip(GgufOutputType type, bool pure)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var ours = Export(type, pure);
        var (ftype, llamaPure) = LlamaQuantize(type, pure);
        var theirs = Path.Combine(model.Root, $"llama-quantize-{type.Name()}{(pure ? "-pure" : "")}.gguf");
        Assert.True(LlamaCppOracle.Quantize(model.F32Gguf, theirs, ftype, llamaPure), "llama.cpp's quantizer failed");
        output.WriteLine($"export + llama.cpp quantize: {sw.Elapsed.TotalSeconds:F2}s");
        var types = AssertSameTensors(ours, theirs);
        output.WriteLine($"{type}{(pure ? " pure" : "")}: {string.Join(", ", types.GroupBy(kv => kv.Value).Select(g => $"{g.Key} ×{g.Count()}"))}; " +
                         $"output {types["output.weight"]}, token_embd {types["token_embd.weight"]}, attn_v {types["blk.0.attn_v.weight"]}/{types["blk.1.attn_v.weight"]}, ffn_down {types["blk.0.ffn_down.weight"]}/{types["blk.1.ffn_down.weight"]}");

        // Every quantized tensor decodes exactly as the reference codec applied to the F32 export's values.
        using var f32 = GgufFile.Open(model.F32Gguf);
        using var q = GgufFile.Open(ours);
        sw.Restart();
        int checkedTensors = 0;
        foreach (var info in q.Tensors.Where(t => GgmlQuant.IsSupported(t.Type)))
        {
            int rowLength = (int)info.Dimensions[0];
            // The reference encoding of a (tensor, type) pair is shared by the cases that use it (e.g. Q4_K and Q4_K_M).
            var encoded = model.ReferenceEncodings.GetOrAdd((info.Name, info.Type), _ =>
            {
                var original = f32.Get(info.Name).ToFloat32();
                int rows = original.Length / rowLength, rowBytes = (int)(info.ByteSize / rows);
                var e = new byte[info.ByteSize];
                Parallel.For(0, rows, r => GgmlQuant.QuantizeReference(info.Type, original.AsSpan(r * rowLength, rowLength), e.AsSpan(r * rowBytes, rowBytes)));
                return e;
            });
            var want = new float[info.ElementCount];
            var got = new float[info.ElementCount];
            GgmlQuant.Dequantize(info.Type, encoded, want);
            GgmlQuant.Dequantize(info.Type, info.Bytes, got);
            for (int i = 0; i < want.Length; i++)
                if (BitConverter.SingleToInt32Bits(want[i]) != BitConverter.SingleToInt32Bits(got[i]))
                    Assert.Fail($"{info.Name} ({info.Type}) element {i}: {got[i]} vs reference {want[i]}");
            checkedTensors++;
        }
        output.WriteLine($"reference round trip of {checkedTensors} tensors: {sw.Elapsed.TotalSeconds:F2}s");
        Assert.Equal(types.Count(kv => kv.Value != GgmlType.F32), checkedTensors);
        Assert.All(q.Tensors.Where(t => t.Dimensions.Length == 1), t => Assert.Equal(GgmlType.F32, t.Type));
        Assert.Equal((long)type.FileType(), q.Metadata.GetInt("general.file_type"));
    }

    [Theory]
    // Measured (this seed, 32 steps): F32 top-1/top-2 gaps 2.36 (step 4) to 6.85, mean 4.6. Largest logit move
    // (noise) per type, max over the 32 steps: Q8_0 0.110, Q4_0 1.025, Q4_K 0.944, Q4_K_M 0.906. So 2·noise < gap at
    // every step for every type, and the quantized greedy runs reproduce all 32 F32 tokens.
    [InlineData(GgufOutputType.Q8_0)]
    [InlineData(GgufOutputType.Q4_0)]
    [InlineData(GgufOutputType.Q4_K)]
    [InlineData(GgufOutputType.Q4_K_M)]
    public void LlamaCpp_GreedyTopOne_MatchesF32_WhereverTheGapExceedsTheNoise(GgufOutputType type)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var path = Export(type);
        var (fTokens, fLogits) = model.F32Greedy;
        var (qTokens, _) = LlamaCppOracle.Greedy(path, model.Prompt, fTokens.Length);
        var qLogits = LlamaCppOracle.TeacherForced(path, model.Prompt, fTokens);

        // At step t the F32 choice can only flip if some logit moved by half the top-1/top-2 gap: noise_t is the largest
        // move over the whole vocabulary (the quantized model fed the F32 model's tokens), so gap_t > 2·noise_t
        // guarantees the same argmax.
        int steps = fTokens.Length, firstUnsafe = steps;
        var gaps = new double[steps];
        var noise = new double[steps];
        for (int t = 0; t < steps; t++)
        {
            var sorted = fLogits[t].OrderDescending().Take(2).ToArray();
            gaps[t] = sorted[0] - sorted[1];
            double n = 0;
            for (int i = 0; i < fLogits[t].Length; i++) n = Math.Max(n, Math.Abs(qLogits[t][i] - fLogits[t][i]));
            noise[t] = n;
            if (gaps[t] <= 2 * noise[t] && firstUnsafe == steps) firstUnsafe = t;
        }
        output.WriteLine($"export + 3 llama.cpp runs: {sw.Elapsed.TotalSeconds:F2}s (checkpoint + F32 export built once in {model.BuildTime.TotalSeconds:F2}s)");
        int agree = 0;
        while (agree < steps && qTokens[agree] == fTokens[agree]) agree++;
        output.WriteLine($"{type}: free-running greedy agrees with F32 for {agree}/{steps} steps; first step with gap <= 2·noise: {(firstUnsafe == steps ? "none" : firstUnsafe.ToString())}");
        output.WriteLine($"  gap   {string.Join(" ", gaps.Select(g => g.ToString("F2")))}");
        output.WriteLine($"  noise {string.Join(" ", noise.Select(g => g.ToString("F2")))}  (max {noise.Max():F3})");

        // Not vacuous: the model is built so that quantization noise stays well under the typical gap.
        Assert.True(firstUnsafe >= 16, $"only {firstUnsafe} steps have a gap above 2×noise");
        if (agree < firstUnsafe)
            Assert.Fail($"greedy diverged at step {agree} though the gap there ({gaps[agree]:F3}) exceeds 2×noise ({noise[agree]:F3})");
        for (int t = 0; t < steps; t++)
            if (gaps[t] > 2 * noise[t])
                Assert.Equal(fTokens[t], Array.IndexOf(qLogits[t], qLogits[t].Max()));
    }
}
