using System.Text.Json;
using Llava.Formats.Torch;
using Llava.Tensors;
using Llava.Tests;

namespace Llava.Formats.Tests.Torch;

/// <summary>The torch.save fixtures (zip shards, legacy format, mm_projector) against the bf16 safetensors ground truth.</summary>
public sealed unsafe class TorchCheckpointFixtureTests
{
    static string Bin(params string[] parts) => Fixtures.TinyPath(["original-bin", .. parts]);
    static Dictionary<string, SafetensorsReference.Tensor> Truth =>
        SafetensorsReference.Load(Fixtures.TinyPath("original", "llava-v1.5-tiny", "model.safetensors"));

    /// <summary>The deliberate non-bf16 tensors of the fixture set (MANIFEST.md); everything else is BF16.</summary>
    static DType ExpectedDType(string name) => name switch
    {
        "model.norm.weight" or "model.mm_projector.2.bias" => DType.F16,
        "model.layers.1.post_attention_layernorm.weight" => DType.F32,
        _ => DType.BF16,
    };

    static void AssertMatchesTruth(StoredTensor t, DType expected)
    {
        var truth = Truth[t.Name];
        Assert.Equal(expected, t.DType);
        Assert.Equal(truth.Shape, t.Shape);
        var actual = t.ToFloat32();
        Assert.Equal(truth.Values.Length, actual.Length);
        for (int i = 0; i < actual.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(actual[i]) != BitConverter.SingleToInt32Bits(truth.Values[i]))
                Assert.Fail($"{t.Name}[{i}]: {actual[i]} != {truth.Values[i]}");
        }
    }

    [Theory]
    [InlineData("pytorch_model-00001-of-00002.bin")]
    [InlineData("pytorch_model-00002-of-00002.bin")]
    public void ShardMatchesSafetensorsExactly(string shard)
    {
        using var index = JsonDocument.Parse(File.ReadAllText(Bin("llava-v1.5-tiny", "pytorch_model.bin.index.json")));
        var expectedNames = index.RootElement.GetProperty("weight_map").EnumerateObject()
            .Where(p => p.Value.GetString() == shard).Select(p => p.Name).Order().ToArray();

        using var ck = TorchCheckpoint.Open(Bin("llava-v1.5-tiny", shard));
        Assert.False(ck.IsLegacyFormat);
        Assert.Equal(expectedNames, ck.Names.Order().ToArray());
        foreach (var name in ck.Names) AssertMatchesTruth(ck.Get(name), ExpectedDType(name));
    }

    [Fact]
    public void BothShardsTogetherCoverEveryTensor()
    {
        using var a = TorchCheckpoint.Open(Bin("llava-v1.5-tiny", "pytorch_model-00001-of-00002.bin"));
        using var b = TorchCheckpoint.Open(Bin("llava-v1.5-tiny", "pytorch_model-00002-of-00002.bin"));
        Assert.Equal(Truth.Keys.Order(), a.Names.Concat(b.Names).Order());
        Assert.Equal(24, a.Names.Count);
        Assert.Equal(["lm_head.weight"], b.Names);
    }

    [Fact]
    public void ContiguousViewsPointIntoTheSharedStorage()
    {
        using var ck = TorchCheckpoint.Open(Bin("llava-v1.5-tiny", "pytorch_model-00001-of-00002.bin"));
        // q/k/v are rows 0:64, 64:128, 128:192 of one fused storage: no copies, 64*64 bf16 = 8192 bytes apart.
        var q = ck.Get("model.layers.0.self_attn.q_proj.weight");
        var k = ck.Get("model.layers.0.self_attn.k_proj.weight");
        var v = ck.Get("model.layers.0.self_attn.v_proj.weight");
        Assert.Equal(8192L, (long)(k.Data - q.Data));
        Assert.Equal(8192L, (long)(v.Data - k.Data));
    }

    [Fact]
    public void NonContiguousViewsAreMaterializedRowMajor()
    {
        using var ck = TorchCheckpoint.Open(Bin("llava-v1.5-tiny", "pytorch_model-00001-of-00002.bin"));
        var down = ck.Get("model.layers.1.mlp.down_proj.weight"); // .t() view, stride (1, 64)
        Assert.Equal([64L, 172], down.Shape);
        AssertMatchesTruth(down, DType.BF16);
        var norm = ck.Get("model.layers.0.input_layernorm.weight"); // buf[1::2] of a NaN-padded storage
        Assert.DoesNotContain(norm.ToFloat32(), float.IsNaN);
        AssertMatchesTruth(norm, DType.BF16);
    }

    [Fact]
    public void LegacyFormatMatchesSafetensorsExactly()
    {
        using var ck = TorchCheckpoint.Open(Bin("legacy", "pytorch_model.bin"));
        Assert.True(ck.IsLegacyFormat);
        Assert.Equal(Truth.Keys.Order(), ck.Names.Order());
        foreach (var name in ck.Names) AssertMatchesTruth(ck.Get(name), ExpectedDType(name));
        var q = ck.Get("model.layers.0.self_attn.q_proj.weight");
        var k = ck.Get("model.layers.0.self_attn.k_proj.weight");
        Assert.Equal(8192L, (long)(k.Data - q.Data));
    }

    [Fact]
    public void MmProjectorHasTheStageOneKeys()
    {
        using var ck = TorchCheckpoint.Open(Bin("mm_projector.bin"));
        Assert.Equal(
            ["model.mm_projector.0.weight", "model.mm_projector.0.bias", "model.mm_projector.2.weight", "model.mm_projector.2.bias"],
            ck.Names);
        var shapes = new Dictionary<string, long[]>
        {
            ["model.mm_projector.0.weight"] = [64, 64],
            ["model.mm_projector.0.bias"] = [64],
            ["model.mm_projector.2.weight"] = [64, 64],
            ["model.mm_projector.2.bias"] = [64],
        };
        foreach (var name in ck.Names)
        {
            var t = ck.Get(name);
            Assert.Equal(shapes[name], t.Shape);
            AssertMatchesTruth(t, DType.BF16); // all bf16 here, including 2.bias (F16 only in the shard)
        }
        Assert.False(ck.Contains("model.norm.weight"));
        Assert.Throws<ModelFormatException>(() => ck.Get("model.norm.weight"));
    }

    [Theory]
    [InlineData("os_system.bin", "os.system")]
    [InlineData("builtins_eval.bin", "builtins.eval")]
    [InlineData("stack_global_eval.bin", "builtins.eval")]
    public void HostileGlobalsAreRefused(string file, string global)
    {
        var path = Bin("hostile", file);
        var e = Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains($"'{global}'", e.Message);
        Assert.Contains("refusing to load", e.Message);
        Assert.Contains("only tensor rebuilds are allowed", e.Message);
    }

    [Fact]
    public void HugeStorageIsRefusedBeforeAllocating()
    {
        var path = Bin("hostile", "huge_storage.bin");
        var e = Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("storage '0'", e.Message);
        Assert.Contains("549755813888", e.Message);
        Assert.Contains("128 bytes", e.Message);
    }

    [Fact]
    public void TruncatedZipIsRefusedAsCorruptArchive()
    {
        var path = Bin("hostile", "not_a_zip.bin");
        var e = Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("zip", e.Message);
        Assert.Contains("end-of-central-directory", e.Message);
    }

    [Fact]
    public void DisposeFreesAndForbidsFurtherUse()
    {
        var ck = TorchCheckpoint.Open(Bin("llava-v1.5-tiny", "pytorch_model-00001-of-00002.bin"));
        ck.Dispose();
        ck.Dispose(); // idempotent
        Assert.Throws<ObjectDisposedException>(() => ck.TryGet("model.norm.weight", out _));
    }
}
