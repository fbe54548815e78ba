using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Llava.Models.Gguf;

namespace Llava.Bench.Race;

/// <summary>
/// The race's model files: a random-weight LLaVA-1.5 checkpoint in the llava-hf layout (config.json, the fixture's
/// tokenizer.model, one BF16 model.safetensors, seeded), then the exporter's own GGUF pair from it — the text model in
/// the requested type (llama-quantize's per-tensor rules, ggml's reference quantizer, spread over the worker threads)
/// and an F16 mmproj. Everything streams a bounded chunk at a time (never a whole model in memory) and is cached:
/// the checkpoint serves every type of a shape, each GGUF is written once.
/// </summary>
static class SyntheticLlava
{
    public sealed record Files(string TextModel, string Mmproj);

    const float Std = 0.02f;                    // a real init's scale (initializer_range)
    const int ChunkElements = 1 << 22;          // 4M values (8 MiB of BF16) generated per step

    public static Files Ensure(RaceShape shape, GgufOutputType type, string cacheDir)
    {
        string dir = Path.Combine(cacheDir, shape.Name);
        Directory.CreateDirectory(dir);
        string name = $"llava-synthetic-{shape.Name}";
        string checkpoint = Path.Combine(dir, name);
        var options = new GgufExportOptions { OutputType = type, MmprojType = GgufOutputType.F16 };
        var (text, mmproj) = GgufExporter.OutputPaths(name, dir, options);
        if (File.Exists(text) && File.Exists(mmproj))
        {
            Log($"cached: {text} ({new FileInfo(text).Length / 1e9:F2} GB), {mmproj} ({new FileInfo(mmproj).Length / 1e9:F2} GB)");
            return new Files(text, mmproj);
        }
        EnsureCheckpoint(shape, checkpoint);
        if (!File.Exists(text))
        {
            var sw = Stopwatch.StartNew();
            var report = GgufExporter.ExportTextModel(checkpoint, text, options with { Progress = ProgressPrinter($"text {type.Name()}") });
            EndProgress();
            Log($"wrote {text}: {report.FileBytes / 1e9:F2} GB, {report.BitsPerWeight:F2} bits/weight, " +
                $"types {string.Join(", ", report.TypeCounts.Select(t => $"{t.Count}×{t.Type}"))}, {sw.Elapsed.TotalSeconds:F0} s");
        }
        if (!File.Exists(mmproj))
        {
            var sw = Stopwatch.StartNew();
            var report = GgufExporter.ExportMmproj(checkpoint, mmproj, options with { Progress = ProgressPrinter("mmproj f16") });
            EndProgress();
            Log($"wrote {mmproj}: {report.FileBytes / 1e9:F2} GB, {sw.Elapsed.TotalSeconds:F0} s");
        }
        return new Files(text, mmproj);
    }

    static void Log(string s) => Console.Error.WriteLine("[files] " + s);

    static long lastPrint;
    static Action<GgufExportProgress> ProgressPrinter(string what)
    {
        var sw = Stopwatch.StartNew();
        return p =>
        {
            long now = sw.ElapsedMilliseconds;
            if (now - Interlocked.Read(ref lastPrint) < 1000 && p.BytesDone < p.BytesTotal) return;
            Interlocked.Exchange(ref lastPrint, now);
            double mbps = p.BytesDone / 1e6 / Math.Max(1e-3, now / 1000.0);
            Console.Error.Write($"\r[files] {what}: {p.BytesDone / 1e9,6:F2}/{p.BytesTotal / 1e9:F2} GB, tensor {p.TensorIndex}/{p.TensorCount} {p.Tensor,-28} {mbps,6:F0} MB/s   ");
        };
    }

    static void EndProgress() { Console.Error.WriteLine(); lastPrint = 0; }

    enum Init { Weight, Norm, Bias }

    sealed record Entry(string Name, long[] Shape, Init Init)
    {
        public long Elements => Shape.Aggregate(1L, (a, b) => a * b);
    }

    /// <summary>The llava-hf (transformers 4.45 "legacy" names) tensors the exporter reads; CLIP's unused last block is left out.</summary>
    static List<Entry> Entries(RaceShape s)
    {
        var e = new List<Entry>();
        long h = s.Hidden, q = s.Heads * s.HeadDim, kv = s.KvHeads * s.HeadDim, f = s.Ffn, v = s.Vocab;
        e.Add(new("language_model.model.embed_tokens.weight", [v, h], Init.Weight));
        for (int i = 0; i < s.Layers; i++)
        {
            string p = $"language_model.model.layers.{i}.";
            e.Add(new(p + "input_layernorm.weight", [h], Init.Norm));
            e.Add(new(p + "self_attn.q_proj.weight", [q, h], Init.Weight));
            e.Add(new(p + "self_attn.k_proj.weight", [kv, h], Init.Weight));
            e.Add(new(p + "self_attn.v_proj.weight", [kv, h], Init.Weight));
            e.Add(new(p + "self_attn.o_proj.weight", [h, q], Init.Weight));
            e.Add(new(p + "post_attention_layernorm.weight", [h], Init.Norm));
            e.Add(new(p + "mlp.gate_proj.weight", [f, h], Init.Weight));
            e.Add(new(p + "mlp.up_proj.weight", [f, h], Init.Weight));
            e.Add(new(p + "mlp.down_proj.weight", [h, f], Init.Weight));
        }
        e.Add(new("language_model.model.norm.weight", [h], Init.Norm));
        e.Add(new("language_model.lm_head.weight", [v, h], Init.Weight));

        long c = RaceShape.VisionHidden, cf = RaceShape.VisionFfn;
        const string vp = "vision_tower.vision_model.";
        e.Add(new(vp + "embeddings.patch_embedding.weight", [c, 3, RaceShape.Patch, RaceShape.Patch], Init.Weight));
        e.Add(new(vp + "embeddings.class_embedding", [c], Init.Bias));
        e.Add(new(vp + "embeddings.position_embedding.weight", [RaceShape.Patches + 1, c], Init.Weight));
        e.Add(new(vp + "pre_layrnorm.weight", [c], Init.Norm));
        e.Add(new(vp + "pre_layrnorm.bias", [c], Init.Bias));
        for (int i = 0; i < RaceShape.VisionUsedLayers; i++)
        {
            string p = $"{vp}encoder.layers.{i}.";
            foreach (var m in new[] { "q_proj", "k_proj", "v_proj", "out_proj" })
            {
                e.Add(new(p + "self_attn." + m + ".weight", [c, c], Init.Weight));
                e.Add(new(p + "self_attn." + m + ".bias", [c], Init.Bias));
            }
            e.Add(new(p + "layer_norm1.weight", [c], Init.Norm));
            e.Add(new(p + "layer_norm1.bias", [c], Init.Bias));
            e.Add(new(p + "mlp.fc1.weight", [cf, c], Init.Weight));
            e.Add(new(p + "mlp.fc1.bias", [cf], Init.Bias));
            e.Add(new(p + "mlp.fc2.weight", [c, cf], Init.Weight));
            e.Add(new(p + "mlp.fc2.bias", [c], Init.Bias));
            e.Add(new(p + "layer_norm2.weight", [c], Init.Norm));
            e.Add(new(p + "layer_norm2.bias", [c], Init.Bias));
        }
        e.Add(new("multi_modal_projector.linear_1.weight", [h, c], Init.Weight));
        e.Add(new("multi_modal_projector.linear_1.bias", [h], Init.Bias));
        e.Add(new("multi_modal_projector.linear_2.weight", [h, h], Init.Weight));
        e.Add(new("multi_modal_projector.linear_2.bias", [h], Init.Bias));
        return e;
    }

    static void EnsureCheckpoint(RaceShape s, string dir)
    {
        string weights = Path.Combine(dir, "model.safetensors");
        if (File.Exists(weights)) return;
        Directory.CreateDirectory(dir);
        string fixture = FindFixture();
        File.Copy(Path.Combine(fixture, "tokenizer.model"), Path.Combine(dir, "tokenizer.model"), overwrite: true);
        // No added tokens: the vocabulary is the SentencePiece model's 32000 pieces, as LLaMA / Vicuna.
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """
            {"add_bos_token": true, "add_eos_token": false, "legacy": false, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "tokenizer_class": "LlamaTokenizer"}
            """);
        File.Copy(Path.Combine(fixture, "preprocessor_config.json"), Path.Combine(dir, "preprocessor_config.json"), overwrite: true);
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("LlavaForConditionalGeneration"),
            ["model_type"] = "llava",
            ["image_token_index"] = 32000,
            ["projector_hidden_act"] = "gelu",
            ["vision_feature_layer"] = -2,
            ["vision_feature_select_strategy"] = "default",
            ["tie_word_embeddings"] = false,
            ["torch_dtype"] = "bfloat16",
            ["text_config"] = new JsonObject
            {
                ["model_type"] = "llama",
                ["hidden_size"] = s.Hidden,
                ["intermediate_size"] = s.Ffn,
                ["num_hidden_layers"] = s.Layers,
                ["num_attention_heads"] = s.Heads,
                ["num_key_value_heads"] = s.KvHeads,
                ["vocab_size"] = s.Vocab,
                ["max_position_embeddings"] = s.Context,
                ["rms_norm_eps"] = 1e-5,
                ["rope_theta"] = 10000.0,
                ["hidden_act"] = "silu",
                ["tie_word_embeddings"] = false,
                ["bos_token_id"] = 1,
                ["eos_token_id"] = 2,
            },
            ["vision_config"] = new JsonObject
            {
                ["model_type"] = "clip_vision_model",
                ["hidden_size"] = RaceShape.VisionHidden,
                ["intermediate_size"] = RaceShape.VisionFfn,
                ["num_hidden_layers"] = RaceShape.VisionLayers,
                ["num_attention_heads"] = RaceShape.VisionHeads,
                ["image_size"] = RaceShape.ImageSize,
                ["patch_size"] = RaceShape.Patch,
                ["num_channels"] = 3,
                ["hidden_act"] = "quick_gelu",
                ["layer_norm_eps"] = 1e-5,
                ["projection_dim"] = 768,
            },
        };
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        WriteSafetensors(weights, Entries(s));
    }

    /// <summary>tests/fixtures/llava-tiny/hf, found from the working directory or the bench binary upwards.</summary>
    static string FindFixture()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                var p = Path.Combine(d.FullName, "tests", "fixtures", "llava-tiny", "hf");
                if (File.Exists(Path.Combine(p, "tokenizer.model"))) return p;
            }
        }
        throw new FileNotFoundException("tests/fixtures/llava-tiny/hf/tokenizer.model not found above the working directory");
    }

    /// <summary>A BF16 safetensors file written as it is generated: header first, then each tensor chunk by chunk.</summary>
    static void WriteSafetensors(string path, List<Entry> entries)
    {
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        long offset = 0;
        foreach (var e in entries)
        {
            long bytes = e.Elements * 2;
            header[e.Name] = new JsonObject
            {
                ["dtype"] = "BF16",
                ["shape"] = new JsonArray(e.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int pad = (8 - json.Length % 8) % 8;
        long total = offset;
        var tmp = path + ".partial";
        var sw = Stopwatch.StartNew();
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            Span<byte> len = stackalloc byte[8];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)(json.Length + pad));
            fs.Write(len);
            fs.Write(json);
            for (int i = 0; i < pad; i++) fs.WriteByte((byte)' ');
            var buf = new ushort[ChunkElements];
            long done = 0, lastShown = -1;
            for (int t = 0; t < entries.Count; t++)
            {
                var e = entries[t];
                ulong seed = Fnv(e.Name);
                for (long start = 0, chunk = 0; start < e.Elements; start += ChunkElements, chunk++)
                {
                    int n = (int)Math.Min(ChunkElements, e.Elements - start);
                    Fill(buf.AsSpan(0, n), e.Init, seed, (ulong)chunk);
                    fs.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(buf.AsSpan(0, n)));
                    done += 2L * n;
                    long sec = sw.ElapsedMilliseconds / 1000;
                    if (sec != lastShown)
                    {
                        lastShown = sec;
                        Console.Error.Write($"\r[files] random BF16 checkpoint: {done / 1e9,6:F2}/{total / 1e9:F2} GB, tensor {t + 1}/{entries.Count} {done / 1e6 / Math.Max(1e-3, sw.Elapsed.TotalSeconds),6:F0} MB/s   ");
                    }
                }
            }
        }
        Console.Error.WriteLine();
        File.Move(tmp, path, overwrite: true);
        Log($"wrote {path}: {total / 1e9:F2} GB in {sw.Elapsed.TotalSeconds:F0} s");
    }

    static ulong Fnv(string s)
    {
        ulong h = 14695981039346656037;
        foreach (char ch in s) { h ^= ch; h *= 1099511628211; }
        return h;
    }

    /// <summary>
    /// Seeded uniform values with standard deviation <see cref="Std"/> (weights), 1 ± 0.05 (norm gains) or small
    /// biases, rounded to BF16. Each 64K block of a chunk has its own SplitMix64 stream, so the result does not depend
    /// on the thread count.
    /// </summary>
    static void Fill(Span<ushort> dst, Init init, ulong seed, ulong chunk)
    {
        const int Block = 1 << 16;
        int blocks = (dst.Length + Block - 1) / Block;
        float amp = init switch { Init.Norm => 0.05f, Init.Bias => 0.01f, _ => Std * MathF.Sqrt(3) };
        float center = init == Init.Norm ? 1f : 0f;
        unsafe
        {
            fixed (ushort* p0 = dst)
            {
                ushort* p = p0;
                int length = dst.Length;
                Parallel.For(0, blocks, new ParallelOptions { MaxDegreeOfParallelism = Llava.Tensors.Workers.ThreadCount }, b =>
                {
                    ulong state = seed ^ (chunk * 0x9E3779B97F4A7C15UL) ^ ((ulong)b * 0xBF58476D1CE4E5B9UL);
                    int end = Math.Min(length, (b + 1) * Block);
                    for (int i = b * Block; i < end; i++)
                    {
                        state += 0x9E3779B97F4A7C15UL;
                        ulong z = state;
                        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
                        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
                        z ^= z >> 31;
                        float u = (z >> 40) * (1f / (1 << 24)) * 2f - 1f;   // [-1, 1)
                        float v = center + amp * u;
                        uint bits = BitConverter.SingleToUInt32Bits(v);
                        p[i] = (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
                    }
                });
            }
        }
    }
}
