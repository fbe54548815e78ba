using Llava.Formats;
using Llava.Formats.Gguf;
using Llava.Models.Gguf;
using Llava.Models.Loading;
using Llava.Tensors;

namespace Llava.Tests.Gguf;

/// <summary>The exported files read back with our own GGUF reader: keys, vocabulary, names, shapes and values.</summary>
public sealed class GgufExporterTests
{
    static string Original => Fixtures.TinyPath("original", "llava-v1.5-tiny");
    static string Hf => Fixtures.TinyPath("hf");

    [Fact]
    public void TextModel_KeysVocabAndWeights()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "t.gguf");
        GgufExporter.ExportTextModel(Hf, path, new GgufExportOptions { OutputType = GgufOutputType.F32 });
        using var g = GgufFile.Open(path);
        var m = g.Metadata;
        Assert.Equal("llama", m.GetString("general.architecture"));
        Assert.Equal(64, m.GetInt("llama.embedding_length"));
        Assert.Equal(2, m.GetInt("llama.block_count"));
        Assert.Equal(172, m.GetInt("llama.feed_forward_length"));
        Assert.Equal(16, m.GetInt("llama.rope.dimension_count"));
        Assert.Equal(4, m.GetInt("llama.attention.head_count_kv"));
        Assert.Equal(1e-5f, (float)m.GetFloat("llama.attention.layer_norm_rms_epsilon"));
        Assert.Equal(10000.0, m.GetFloat("llama.rope.freq_base"));
        // llava-hf: 32000 pieces, <image> and <pad> added (special → CONTROL), then [PADn] up to 32064.
        var tokens = m.GetStringArray("tokenizer.ggml.tokens");
        var types = m.GetIntArray("tokenizer.ggml.token_type");
        var scores = m.GetFloatArray("tokenizer.ggml.scores");
        Assert.Equal(32064, tokens.Length);
        Assert.Equal(("<image>", 3L, -1000.0), (tokens[32000], types[32000], scores[32000]));
        Assert.Equal(("<pad>", 3L), (tokens[32001], types[32001]));
        Assert.Equal(("[PAD32002]", 5L, -10000.0), (tokens[32002], types[32002], scores[32002]));
        Assert.Equal(("[PAD32063]", 5L), (tokens[32063], types[32063]));
        Assert.Equal(("<0x0A>", 6L), (tokens[13], types[13]));
        Assert.Equal(1L, types[1000]);   // ids 3..258 are the byte pieces
        Assert.Equal(1, m.GetInt("tokenizer.ggml.bos_token_id"));
        Assert.Equal(2, m.GetInt("tokenizer.ggml.eos_token_id"));
        Assert.Equal(32001, m.GetInt("tokenizer.ggml.padding_token_id"));
        Assert.True(m.GetBool("tokenizer.ggml.add_bos_token"));

        using var src = CheckpointFiles.OpenDirectory(Hf);
        var emb = g.GetInfo("token_embd.weight");
        Assert.Equal([64L, 32064], emb.Dimensions);
        Assert.Equal(src.Get("language_model.model.embed_tokens.weight").ToFloat32(), g.Get("token_embd.weight").ToFloat32());
        Assert.Equal(GgmlType.F32, g.GetInfo("blk.1.ffn_down.weight").Type);
        Assert.Equal([172L, 64], g.GetInfo("blk.1.ffn_down.weight").Dimensions);

        // q rows are permuted per head: GGUF row h·16 + 2i + j is HF row h·16 + 8j + i.
        var q = src.Get("language_model.model.layers.0.self_attn.q_proj.weight").ToFloat32();
        var gq = g.Get("blk.0.attn_q.weight").ToFloat32();
        for (int h = 0; h < 4; h++)
            for (int i = 0; i < 8; i++)
                for (int j = 0; j < 2; j++)
                    Assert.Equal(q.AsSpan((h * 16 + 8 * j + i) * 64, 64).ToArray(), gq.AsSpan((h * 16 + 2 * i + j) * 64, 64).ToArray());
        // v is not permuted.
        Assert.Equal(src.Get("language_model.model.layers.0.self_attn.v_proj.weight").ToFloat32(), g.Get("blk.0.attn_v.weight").ToFloat32());
    }

    [Theory]
    [InlineData(GgufOutputType.F16)]
    [InlineData(GgufOutputType.BF16)]
    public void HalfPrecisionExports_KeepVectorsF32_AndRoundMatrices(GgufOutputType type)
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "t.gguf");
        GgufExporter.ExportTextModel(Original, path, new GgufExportOptions { OutputType = type });
        using var g = GgufFile.Open(path);
        var want = type == GgufOutputType.F16 ? GgmlType.F16 : GgmlType.BF16;
        Assert.Equal(want, g.GetInfo("blk.0.ffn_up.weight").Type);
        Assert.Equal(want, g.GetInfo("output.weight").Type);
        Assert.Equal(GgmlType.F32, g.GetInfo("blk.0.attn_norm.weight").Type);
        Assert.Equal(32000, g.Metadata.GetStringArray("tokenizer.ggml.tokens").Length);
        // The fixture is stored in bf16: a bf16 export is bit-exact, an f16 one within f16 rounding.
        using var src = CheckpointFiles.OpenDirectory(Original);
        var a = src.Get("model.layers.0.mlp.up_proj.weight").ToFloat32();
        var b = g.Get("blk.0.ffn_up.weight").ToFloat32();
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= Math.Abs(a[i]) * 1e-3 + 1e-7, $"{a[i]} vs {b[i]}");
        if (type == GgufOutputType.BF16) Assert.Equal(a, b);
    }

    [Theory]
    [InlineData("original")]
    [InlineData("hf")]
    public void Mmproj_HasLlamaCppKeys_AndOnlyTheUsedBlocks(string layout)
    {
        using var dir = new TempDir();
        var model = layout == "hf" ? Hf : Original;
        var (text, mmproj) = GgufExporter.Export(model, dir.Path, new GgufExportOptions { OutputType = GgufOutputType.F16 });
        Assert.True(File.Exists(text));
        using var g = GgufFile.Open(mmproj);
        var m = g.Metadata;
        Assert.Equal("clip", m.GetString("general.architecture"));
        Assert.Equal("mlp", m.GetString("clip.projector_type"));
        Assert.True(m.GetBool("clip.has_vision_encoder"));
        Assert.True(m.GetBool("clip.has_llava_projector"));
        Assert.Equal(336, m.GetInt("clip.vision.image_size"));
        Assert.Equal(14, m.GetInt("clip.vision.patch_size"));
        Assert.Equal(64, m.GetInt("clip.vision.embedding_length"));
        Assert.Equal(128, m.GetInt("clip.vision.feed_forward_length"));
        Assert.Equal(4, m.GetInt("clip.vision.attention.head_count"));
        // 3-layer tower, vision_feature_layer −2 → hidden_states[2]: two blocks, and feature_layer says so.
        Assert.Equal(2, m.GetInt("clip.vision.block_count"));
        Assert.Equal([2L], m.GetIntArray("clip.vision.feature_layer"));
        Assert.False(m.GetBool("clip.use_gelu"));   // quick_gelu
        Assert.Equal([0.48145466f, 0.4578275f, 0.40821073f], m.GetFloatArray("clip.vision.image_mean").Select(x => (float)x));
        Assert.True(g.TryGetInfo("v.blk.1.ffn_up.weight", out var up));
        Assert.Equal([64L, 128], up.Dimensions);
        Assert.False(g.TryGetInfo("v.blk.2.attn_q.weight", out _));
        Assert.False(g.TryGetInfo("v.post_ln.weight", out _));
        Assert.Equal([14L, 14, 3, 64], g.GetInfo("v.patch_embd.weight").Dimensions);
        Assert.Equal([64L, 577], g.GetInfo("v.position_embd.weight").Dimensions);
        Assert.Equal(GgmlType.F32, g.GetInfo("v.class_embd").Type);
        Assert.Equal([64L, 64], g.GetInfo("mm.0.weight").Dimensions);
        Assert.Equal([64L], g.GetInfo("mm.2.bias").Dimensions);
    }

    [Fact]
    public void MissingWeights_AreAllListedInOneError()
    {
        using var dir = new TempDir();
        var model = Path.Combine(dir.Path, "broken");
        Directory.CreateDirectory(model);
        foreach (var f in Directory.GetFiles(Original)) File.Copy(f, Path.Combine(model, Path.GetFileName(f)));
        // Keep only the embedding: every other tensor is missing.
        using (var src = CheckpointFiles.OpenDirectory(Original))
        {
            var e = src.Get("model.embed_tokens.weight");
            Formats.Safetensors.SafetensorsWriter.Write(Path.Combine(model, "model.safetensors"),
                [new(e.Name, e.DType, e.Shape, e.Bytes.ToArray())]);
        }
        var options = new GgufExportOptions { VisionTower = Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336") };
        var ex = Assert.Throws<ModelFormatException>(() => GgufExporter.ExportTextModel(model, Path.Combine(dir.Path, "x.gguf"), options));
        Assert.Contains("model.layers.1.mlp.down_proj.weight", ex.Message);
        Assert.Contains("lm_head.weight", ex.Message);
        Assert.False(File.Exists(Path.Combine(dir.Path, "x.gguf")));
    }
}
