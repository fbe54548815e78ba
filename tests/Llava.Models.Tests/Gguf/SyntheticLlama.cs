using System.Text.Json.Nodes;
using Llava.Formats;
using Llava.Formats.Safetensors;
using Llava.Models.Gguf;

namespace Llava.Tests.Gguf;

/// <summary>
/// A LLaVA-1.5 checkpoint (original layout) whose LLaMA has K-quant-friendly shapes: hidden 256, ffn 512, 2 layers,
/// 4 heads, vocab 32000, random f32 weights, the fixture's tokenizer and CLIP tower. Written once per test class
/// with its F32 GGUF export (the reference every quantized export is compared with).
/// <para>
/// Weights are random (seeded) with one piece of structure so that greedy decoding is not a coin toss:
/// lm_head row π(x) = β·embed(x) + noise for a random permutation π, so each token favours a successor while the
/// layers (random, unit-gain) shift the scores. Fully random weights give near-uniform logits whose top-1/top-2 gaps
/// are below any quantization noise from the first step, which would test nothing.
/// </para>
/// </summary>
public sealed class SyntheticLlama : IDisposable
{
    public const int Hidden = 256, Ffn = 512, Layers = 2, Heads = 4, Vocab = 32000;
    public const string Name = "llava-synthetic-256";
    readonly TempDir dir = new();

    public string Root => dir.Path;
    public string Model { get; }
    public string F32Gguf { get; }
    public int[] Prompt { get; }
    readonly Lazy<(int[] Tokens, float[][] Logits)> f32Greedy;
    /// <summary>llama.cpp's 32-step greedy run on the F32 export.</summary>
    public (int[] Tokens, float[][] Logits) F32Greedy => f32Greedy.Value;

    public TimeSpan BuildTime { get; }
    /// <summary>GgmlQuant.QuantizeReference of each F32-export tensor, by (name, type), shared across test cases.</summary>
    public System.Collections.Concurrent.ConcurrentDictionary<(string, Llava.Tensors.GgmlType), byte[]> ReferenceEncodings { get; } = new();

    public SyntheticLlama()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Model = Path.Combine(dir.Path, Name);
        Directory.CreateDirectory(Model);
        var orig = Fixtures.TinyPath("original", "llava-v1.5-tiny");
        foreach (var f in new[] { "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json" })
            File.Copy(Path.Combine(orig, f), Path.Combine(Model, f));
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(orig, "config.json")))!.AsObject();
        cfg["_name_or_path"] = Name;
        cfg["hidden_size"] = Hidden;
        cfg["intermediate_size"] = Ffn;
        cfg["num_hidden_layers"] = Layers;
        cfg["num_attention_heads"] = Heads;
        cfg["num_key_value_heads"] = Heads;
        cfg["vocab_size"] = Vocab;
        cfg["torch_dtype"] = "float32";
        cfg["mm_vision_tower"] = Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336");
        File.WriteAllText(Path.Combine(Model, "config.json"), cfg.ToJsonString());

        var rng = new Random(20240611);
        float[] Normal(int n, double std, double mean = 0)
        {
            var a = new float[n];
            for (int i = 0; i < n; i += 2)
            {
                double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble(), r = Math.Sqrt(-2 * Math.Log(u1));
                a[i] = (float)(mean + std * r * Math.Cos(2 * Math.PI * u2));
                if (i + 1 < n) a[i + 1] = (float)(mean + std * r * Math.Sin(2 * Math.PI * u2));
            }
            return a;
        }
        var entries = new List<SafetensorsWriter.Entry>();
        void Add(string name, long[] shape, float[] v) => entries.Add(SafetensorsWriter.F32(name, shape, v));

        var embed = Normal(Vocab * Hidden, 1.0);
        Add("model.embed_tokens.weight", [Vocab, Hidden], embed);
        double attn = 1 / Math.Sqrt(Hidden), down = 1 / Math.Sqrt(Ffn);
        for (int i = 0; i < Layers; i++)
        {
            string p = $"model.layers.{i}.";
            Add(p + "input_layernorm.weight", [Hidden], Normal(Hidden, 0.1, 1));
            foreach (var m in new[] { "q_proj", "k_proj", "v_proj", "o_proj" })
                Add(p + "self_attn." + m + ".weight", [Hidden, Hidden], Normal(Hidden * Hidden, attn));
            Add(p + "post_attention_layernorm.weight", [Hidden], Normal(Hidden, 0.1, 1));
            Add(p + "mlp.gate_proj.weight", [Ffn, Hidden], Normal(Ffn * Hidden, attn));
            Add(p + "mlp.up_proj.weight", [Ffn, Hidden], Normal(Ffn * Hidden, attn));
            Add(p + "mlp.down_proj.weight", [Hidden, Ffn], Normal(Hidden * Ffn, down));
        }
        Add("model.norm.weight", [Hidden], Normal(Hidden, 0.1, 1));
        const float beta = 0.05f;
        var perm = Enumerable.Range(0, Vocab).ToArray();
        rng.Shuffle(perm);
        var head = Normal(Vocab * Hidden, 0.05);
        for (int x = 0; x < Vocab; x++)
            for (int j = 0; j < Hidden; j++)
                head[perm[x] * Hidden + j] += beta * embed[x * Hidden + j];
        Add("lm_head.weight", [Vocab, Hidden], head);
        Add("model.mm_projector.0.weight", [Hidden, 64], Normal(Hidden * 64, 0.1));
        Add("model.mm_projector.0.bias", [Hidden], new float[Hidden]);
        Add("model.mm_projector.2.weight", [Hidden, Hidden], Normal(Hidden * Hidden, attn));
        Add("model.mm_projector.2.bias", [Hidden], new float[Hidden]);
        SafetensorsWriter.Write(Path.Combine(Model, "model.safetensors"), entries);

        F32Gguf = Path.Combine(dir.Path, Name + "-f32.gguf");
        GgufExporter.ExportTextModel(Model, F32Gguf, new GgufExportOptions { OutputType = GgufOutputType.F32 });
        Prompt = Llava.Text.LlamaTokenizer.FromDirectory(Model).Encode("A chat about an image: the quick brown fox jumps over the lazy dog.");
        f32Greedy = new(() => LlamaCppOracle.Greedy(F32Gguf, Prompt, 32));
        BuildTime = sw.Elapsed;
    }

    public void Dispose() => dir.Dispose();
}
