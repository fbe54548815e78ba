using Llava.Models.Gguf;
using Llava.Models.Llava;

namespace Llava.Tests;

/// <summary>
/// Our engine on llama.cpp-style files: the fixture exported to GGUF (text model + mmproj) must give the same image
/// features and logits as the safetensors checkpoint, and LLaVA's own reference numbers.
/// </summary>
public sealed class GgufLoadTests(ITestOutputHelper output)
{
    static (string Text, string Mmproj) Export(TempDir dir, GgufOutputType type)
    {
        var result = GgufExporter.Export(Fixtures.TinyPath("original", "llava-v1.5-tiny"), dir.Path, new GgufExportOptions { OutputType = type });
        return (result.TextModel, result.MmprojPath);
    }

    [Theory]
    [InlineData(GgufOutputType.F32)]
    [InlineData(GgufOutputType.F16)]
    public void ExportedPair_MatchesLlavaReference(GgufOutputType type)
    {
        using var dir = new TempDir();
        var (text, mmproj) = Export(dir, type);
        using var model = LlavaModel.Load(text, new LlavaLoadOptions { Mmproj = mmproj });
        Assert.Equal(CheckpointLayout.Gguf, model.Config.Layout);
        Assert.True(model.Config.Text.RopeInterleaved);

        var c = ReferenceCase.Get("synthetic_500x300__pad");
        var features = model.EncodeImage(c.Tensor("pixel_values"));
        double fe = Numerics.RelativeError(features, c.Tensor("image_features"));
        var session = new Llava.Generation.LlavaSession(model);
        // The GGUF tokenizer (from tokenizer.ggml.*) must give LLaVA's tokenizer_image_token ids.
        var ids = session.Tokenize(ReferenceCase.Root.GetProperty("prompt").GetString()!);
        Assert.Equal(c.InputIdsOriginal, ids);
        var logits = session.Prefill(ids, [session.AddImageFeatures(features)], 8);
        double le = Numerics.RelativeError(logits, c.Tensor("original_code_logits_last"));
        output.WriteLine($"{type}: image features rel err {fe:E2}, logits rel err {le:E2}");
        // F32 is exact up to summation order; F16 adds the rounding of bf16 values that do not fit f16 (tiny ones).
        double bound = type == GgufOutputType.F32 ? 1e-4 : 1e-3;
        Assert.InRange(fe, 0, bound);
        Assert.InRange(le, 0, bound);
    }

    [Fact]
    public void GgufTokenizer_EqualsTokenizerModel_OnReferenceStrings()
    {
        using var dir = new TempDir();
        var (text, mmproj) = Export(dir, GgufOutputType.F16);
        using var model = LlavaModel.Load(text, new LlavaLoadOptions { Mmproj = mmproj });
        var reference = Llava.Text.LlamaTokenizer.FromDirectory(Fixtures.TinyPath("original", "llava-v1.5-tiny"));
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Fixtures.TinyPath("reference", "tokenizer_roundtrip.json")));
        int n = 0;
        foreach (var s in Strings(doc.RootElement))
        {
            Assert.Equal(reference.Encode(s), model.Tokenizer.Encode(s));
            Assert.Equal(reference.Decode(reference.Encode(s)), model.Tokenizer.Decode(model.Tokenizer.Encode(s)));
            n++;
        }
        Assert.True(n >= 10, $"only {n} strings found");
    }

    static IEnumerable<string> Strings(System.Text.Json.JsonElement e)
    {
        // Every "text" string anywhere in the round-trip file.
        if (e.ValueKind == System.Text.Json.JsonValueKind.Object)
        {
            foreach (var p in e.EnumerateObject())
            {
                if (p.Name == "text" && p.Value.ValueKind == System.Text.Json.JsonValueKind.String) yield return p.Value.GetString()!;
                else foreach (var s in Strings(p.Value)) yield return s;
            }
        }
        else if (e.ValueKind == System.Text.Json.JsonValueKind.Array)
            foreach (var x in e.EnumerateArray()) foreach (var s in Strings(x)) yield return s;
    }

    [Fact]
    public void GgufTextModel_WithoutMmproj_SaysWhatToPass()
    {
        using var dir = new TempDir();
        var (text, _) = Export(dir, GgufOutputType.F16);
        var e = Assert.Throws<Llava.Formats.ModelFormatException>(() => LlavaModel.Load(text));
        Assert.Contains("--mmproj", e.Message);
    }

    [Theory]
    [InlineData(8, Llava.Tensors.GgmlType.Q8_0)]
    [InlineData(4, Llava.Tensors.GgmlType.Q4_0)]   // the fixture's rows (64) are not a multiple of 256: Q4_K falls back to Q4_0
    public void LoadBits_EqualsFullPrecisionOnRoundTrippedWeights(int bits, Llava.Tensors.GgmlType type)
    {
        // --load-Nbit must compute what an f32 model holding dequantize(quantize(W)) computes, up to the rounding of the
        // activations to 8-bit blocks that every quantized matmul now does (decode kernels and the int8 prefill GEMM,
        // as llama.cpp: ~1e-2 relative on this random model; each kernel is pinned exactly against dequantize(quantize(W))
        // in QuantMatMulTests/QuantGemmTests), and hold the language model in about bits/16 of the bf16 bytes.
        var c = ReferenceCase.Get("text_only");
        using var dir = new TempDir();
        foreach (var f in Directory.GetFiles(Fixtures.TinyPath("hf")).Where(f => !f.EndsWith(".safetensors")))
            File.Copy(f, Path.Combine(dir.Path, Path.GetFileName(f)));
        long lmBytes = 0;
        using (var src = Llava.Formats.Safetensors.SafetensorsFile.Open(Fixtures.TinyPath("hf", "model.safetensors")))
        {
            var entries = new List<Llava.Formats.Safetensors.SafetensorsWriter.Entry>();
            foreach (var name in src.Names)
            {
                var t = Llava.Formats.TensorFileExtensions.Get(src, name);
                if (name.StartsWith("language_model.") && t.Shape.Length == 2 && t.Shape[1] % 32 == 0)
                {
                    lmBytes += t.ByteLength;
                    var w = t.ToFloat32();
                    int cols = (int)t.Shape[1];
                    var rowBytes = new byte[Llava.Tensors.GgmlTypeInfo.RowBytes(type, cols)];
                    for (int r = 0; r < t.Shape[0]; r++)
                    {
                        Llava.Tensors.Quantization.GgmlQuant.QuantizeReference(type, w.AsSpan(r * cols, cols), rowBytes);
                        Llava.Tensors.Quantization.GgmlQuant.Dequantize(type, rowBytes, w.AsSpan(r * cols, cols));
                    }
                    entries.Add(Llava.Formats.Safetensors.SafetensorsWriter.F32(name, t.Shape, w));
                }
                else entries.Add(new(name, t.DType, t.Shape, t.Bytes.ToArray()));
            }
            Llava.Formats.Safetensors.SafetensorsWriter.Write(Path.Combine(dir.Path, "model.safetensors"), entries);
        }
        using var roundTripped = LlavaModel.Load(dir.Path);
        using var quant = LlavaModel.Load(Fixtures.TinyPath("hf"), new LlavaLoadOptions { LoadBits = bits });
        var expected = new Llava.Generation.LlavaSession(roundTripped).Prefill(c.InputIdsHf, [], 8);
        // An f32 KV cache as the round-tripped model's: this compares the weights path (--load-Nbit defaults to an f16 cache).
        var actual = new Llava.Generation.LlavaSession(quant, kvCache: Llava.Models.Llama.KvCacheType.F32).Prefill(c.InputIdsHf, [], 8);
        double err = Numerics.RelativeError(actual, expected);
        var full = new Llava.Generation.LlavaSession(roundTripped).Prefill(c.InputIdsHf, [], 8);
        output.WriteLine($"--load-{bits}bit ({type}): rel err {err:E2} vs the round-tripped f32 model; {quant.QuantizedBytes} bytes quantized vs {lmBytes} bf16");
        Assert.InRange(err, 0, 3e-2);
        double ratio = (double)quant.QuantizedBytes / lmBytes;
        Assert.InRange(ratio, bits == 8 ? 0.5 : 0.25, bits == 8 ? 0.54 : 0.29);   // Q8_0: 34/64 of bf16; Q4_0: 18/64 (rows of 172 stay bf16)
        Assert.Equal(expected, full);
    }
}
