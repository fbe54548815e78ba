using System.Text.Json.Nodes;
using Llava.Formats.Safetensors;
using Llava.Models.Gguf;

namespace Llava.Tests.LlamaCpp;

/// <summary>One LLaMA shape of the oracle tests. Head dim = hidden / heads; every row length is a multiple of 256.</summary>
public sealed record SyntheticShape(string Name, int Hidden, int Ffn, int Layers, int Heads, int KvHeads)
{
    public int HeadDim => Hidden / Heads;
    public override string ToString() => Name;

    public static readonly SyntheticShape Mha256 = new("h256-l4-mha4-hd64", 256, 512, 4, 4, 4);
    public static readonly SyntheticShape Gqa512 = new("h512-l2-gqa8to2-hd64", 512, 768, 2, 8, 2);
    public static readonly SyntheticShape Hd128 = new("h512-l1-gqa4to2-hd128", 512, 768, 1, 4, 2);
    public static SyntheticShape ByName(string name) => new[] { Mha256, Gqa512, Hd128 }.Single(s => s.Name == name);
}

/// <summary>
/// Original-layout LLaVA-1.5 checkpoints with random (seeded) f32 weights for each <see cref="SyntheticShape"/>, the
/// fixture's tokenizer (vocab 32000) and tiny CLIP tower, written once per test class into a temp dir; their text
/// models are exported to GGUF per tensor type on demand (GgufExporter, --pure: every matrix in the type), the mmproj
/// once per shape (our engine needs one to load a GGUF; llama.cpp ignores it).
/// <para>
/// Weights carry one piece of structure so greedy decoding is not a coin toss: lm_head row π(x) = β·embed(x) + noise
/// for a random permutation π, so each token favours a successor while the random layers shift the scores (fully
/// random weights give near-uniform logits whose top-1/top-2 gaps are below any quantization noise).
/// </para>
/// </summary>
public sealed class SyntheticGgufModels : IDisposable
{
    /// <summary>
    /// The first 4096 pieces of the fixture's tokenizer.model (bytes, specials and the commonest words): the vocab-sized
    /// token_embd/output matrices dominate quantization and matmul time, and 32000 rows would cost ~8× more per file.
    /// (The full 32000-token vocabulary through llama.cpp is covered by Models.Tests' GgufExportOracleTests.)
    /// </summary>
    public const int Vocab = 4096;
    readonly TempDir dir = new();
    readonly Dictionary<string, (string Model, string Mmproj)> checkpoints = new();
    readonly Dictionary<(string, GgufOutputType), string> ggufs = new();
    readonly object gate = new();

    public int[] Prompt { get; }

    public SyntheticGgufModels()
    {
        Prompt = Llava.Text.LlamaTokenizer.FromDirectory(Fixtures.TinyPath("original", "llava-v1.5-tiny"))
            .Encode("A chat about an image: the man is standing on the back of a yellow car in the street.")
            .Where(id => id < Vocab).ToArray();   // pieces beyond the truncated vocabulary are dropped
        if (Prompt.Length < 12) throw new InvalidOperationException($"prompt too short: {Prompt.Length} tokens");
    }

    (string Model, string Mmproj) Checkpoint(SyntheticShape s)
    {
        if (checkpoints.TryGetValue(s.Name, out var c)) return c;
        var model = Path.Combine(dir.Path, s.Name);
        Directory.CreateDirectory(model);
        var orig = Fixtures.TinyPath("original", "llava-v1.5-tiny");
        foreach (var f in new[] { "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json" })
            File.Copy(Path.Combine(orig, f), Path.Combine(model, f));
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(orig, "config.json")))!.AsObject();
        cfg["_name_or_path"] = s.Name;
        cfg["hidden_size"] = s.Hidden;
        cfg["intermediate_size"] = s.Ffn;
        cfg["num_hidden_layers"] = s.Layers;
        cfg["num_attention_heads"] = s.Heads;
        cfg["num_key_value_heads"] = s.KvHeads;
        cfg["vocab_size"] = Vocab;
        cfg["torch_dtype"] = "float32";
        cfg["mm_vision_tower"] = Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336");
        File.WriteAllText(Path.Combine(model, "config.json"), cfg.ToJsonString());

        var rng = new Random(20240611 + s.Hidden * 1000 + s.Layers * 100 + s.Heads * 10 + s.KvHeads);
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
        int h = s.Hidden, kv = s.KvHeads * s.HeadDim;
        var embed = Normal(Vocab * h, 1.0);
        Add("model.embed_tokens.weight", [Vocab, h], embed);
        double attn = 1 / Math.Sqrt(h), down = 1 / Math.Sqrt(s.Ffn);
        for (int i = 0; i < s.Layers; i++)
        {
            string p = $"model.layers.{i}.";
            Add(p + "input_layernorm.weight", [h], Normal(h, 0.1, 1));
            // Queries/keys twice the unit gain so attention is not uniform (RoPE and the softmax both matter).
            Add(p + "self_attn.q_proj.weight", [h, h], Normal(h * h, 2 * attn));
            Add(p + "self_attn.k_proj.weight", [kv, h], Normal(kv * h, 2 * attn));
            Add(p + "self_attn.v_proj.weight", [kv, h], Normal(kv * h, attn));
            Add(p + "self_attn.o_proj.weight", [h, h], Normal(h * h, attn));
            Add(p + "post_attention_layernorm.weight", [h], Normal(h, 0.1, 1));
            Add(p + "mlp.gate_proj.weight", [s.Ffn, h], Normal(s.Ffn * h, attn));
            Add(p + "mlp.up_proj.weight", [s.Ffn, h], Normal(s.Ffn * h, attn));
            Add(p + "mlp.down_proj.weight", [h, s.Ffn], Normal(h * s.Ffn, down));
        }
        Add("model.norm.weight", [h], Normal(h, 0.1, 1));
        const float beta = 0.05f;
        var perm = Enumerable.Range(0, Vocab).ToArray();
        rng.Shuffle(perm);
        var head = Normal(Vocab * h, 0.05);
        for (int x = 0; x < Vocab; x++)
            for (int j = 0; j < h; j++)
                head[perm[x] * h + j] += beta * embed[x * h + j];
        Add("lm_head.weight", [Vocab, h], head);
        Add("model.mm_projector.0.weight", [h, 64], Normal(h * 64, 0.1));
        Add("model.mm_projector.0.bias", [h], new float[h]);
        Add("model.mm_projector.2.weight", [h, h], Normal(h * h, attn));
        Add("model.mm_projector.2.bias", [h], new float[h]);
        SafetensorsWriter.Write(Path.Combine(model, "model.safetensors"), entries);

        var mmproj = Path.Combine(dir.Path, $"mmproj-{s.Name}-f32.gguf");
        GgufExporter.ExportMmproj(model, mmproj, new GgufExportOptions { OutputType = GgufOutputType.F32 });
        return checkpoints[s.Name] = (model, mmproj);
    }

    /// <summary>The text model of <paramref name="s"/> with every matrix in <paramref name="type"/>, and the shape's mmproj.</summary>
    public (string Text, string Mmproj) Gguf(SyntheticShape s, GgufOutputType type)
    {
        lock (gate)
        {
            var (model, mmproj) = Checkpoint(s);
            if (!ggufs.TryGetValue((s.Name, type), out var path))
            {
                path = Path.Combine(dir.Path, $"{s.Name}-{type.Name()}.gguf");
                GgufExporter.ExportTextModel(model, path, new GgufExportOptions { OutputType = type, Pure = true });
                ggufs[(s.Name, type)] = path;
            }
            return (path, mmproj);
        }
    }

    public void Dispose() => dir.Dispose();
}
