using Llava.Formats;
using Llava.Formats.Safetensors;
using Llava.Tensors;

namespace Llava.Tests;

/// <summary>The safetensors reader and writer: round trips, the fixture files, symlinks and hostile headers.</summary>
public sealed class SafetensorsFileTests
{
    [Fact]
    public void WriteThenRead_RoundTripsEveryDtypeAndMetadata()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "t.safetensors");
        float[] f = [1.5f, -2f, float.NaN, float.PositiveInfinity, 0f, 3.25f];
        long[] l = [long.MinValue, -1, 0, 7];
        SafetensorsWriter.Write(path, [
            SafetensorsWriter.F32("a.weight", [2, 3], f),
            SafetensorsWriter.I64("ids", [4], l),
            new SafetensorsWriter.Entry("h", DType.BF16, [2], [0x80, 0x3f, 0x00, 0xc0]),   // 1.0, -2.0
            new SafetensorsWriter.Entry("empty", DType.F16, [0, 5], []),
        ], new Dictionary<string, string> { ["format"] = "pt" });
        using var st = SafetensorsFile.Open(path);
        Assert.Equal(4, st.Names.Count);
        Assert.Equal("pt", st.Metadata["format"]);
        var a = st.Get("a.weight");
        Assert.Equal([2L, 3], a.Shape);
        Assert.Equal(f, a.ToFloat32());
        Assert.Equal(l, st.Get("ids").ToInt64());
        Assert.Equal([1f, -2f], st.Get("h").ToFloat32());
        Assert.Equal(0, st.Get("empty").ElementCount);
        // The data section starts 8-byte aligned, as the reference writer guarantees.
        Assert.Equal(0, BitConverter.ToInt64(File.ReadAllBytes(path), 0) % 8);
    }

    [Fact]
    public void FixtureCheckpoint_HasTheExpectedTensors()
    {
        using var st = SafetensorsFile.Open(Fixtures.TinyPath("hf", "model.safetensors"));
        var emb = st.Get("language_model.model.embed_tokens.weight");
        Assert.Equal(DType.BF16, emb.DType);
        Assert.Equal([32064L, 64], emb.Shape);
        Assert.Equal([64L, 3, 14, 14], st.Get("vision_tower.vision_model.embeddings.patch_embedding.weight").Shape);
    }

    [Fact]
    public void Symlink_IsFollowed_LikeAHuggingFaceCache()
    {
        using var dir = new TempDir();
        var link = Path.Combine(dir.Path, "model.safetensors");
        File.CreateSymbolicLink(link, Fixtures.TinyPath("hf", "model.safetensors"));
        using var st = SafetensorsFile.Open(link);
        Assert.Equal(new FileInfo(Fixtures.TinyPath("hf", "model.safetensors")).Length, new MappedFile(link).Length);
        Assert.Contains("multi_modal_projector.linear_1.weight", st.Names);
    }

    public static IEnumerable<object[]> Corruptions()
    {
        yield return ["truncated to 4 bytes", (Func<byte[], byte[]>)(b => b[..4]), "8-byte header length"];
        yield return ["header length past the end", (Func<byte[], byte[]>)(b => { var c = b.ToArray(); BitConverter.GetBytes(1_000_000L).CopyTo(c, 0); return c[..5000]; }), "truncated"];
        yield return ["absurd header length", (Func<byte[], byte[]>)(b => { var c = b.ToArray(); BitConverter.GetBytes(long.MaxValue).CopyTo(c, 0); return c; }), "header length"];
        yield return ["data cut in half", (Func<byte[], byte[]>)(b => b[..(b.Length / 2)]), "past the end"];
        yield return ["JSON garbage", (Func<byte[], byte[]>)(b => { var c = b.ToArray(); c[8] = (byte)'!'; return c; }), "invalid JSON"];
    }

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void CorruptFile_GivesOneClearError(string what, Func<byte[], byte[]> corrupt, string expected)
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "bad.safetensors");
        File.WriteAllBytes(path, corrupt(File.ReadAllBytes(Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336", "model.safetensors"))));
        var e = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
        Assert.False(string.IsNullOrEmpty(what));
    }

    [Theory]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", "bytes stored")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,4]}}", "bad data_offsets")]
    [InlineData("{\"x\":{\"dtype\":\"Q9\",\"shape\":[4],\"data_offsets\":[0,16]}}", "unsupported dtype")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,16]}}", "bad dimension")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,16]}}", "overflows")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16000]}}", "past the end")]
    public void LyingHeader_IsRefused(string header, string expected)
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "lie.safetensors");
        var h = System.Text.Encoding.UTF8.GetBytes(header);
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)h.Length), .. h, .. new byte[16]]);
        var e = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void ShardIndex_PointingAtMissingShard_IsAClearError()
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "model.safetensors.index.json"), "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\"}}");
        var e = Assert.Throws<ModelFormatException>(() => ShardedTensorFile.Open(Path.Combine(dir.Path, "model.safetensors.index.json"), SafetensorsFile.Open));
        Assert.Contains("model-00001-of-00002.safetensors", e.Message);
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void ShardedSafetensors_ReadAsOne()
    {
        using var dir = new TempDir();
        using var src = SafetensorsFile.Open(Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336", "model.safetensors"));
        var names = src.Names.OrderBy(n => n, StringComparer.Ordinal).ToList();
        var half = names.Count / 2;
        SafetensorsWriter.Entry E(string n) { var t = src.Get(n); return new(n, t.DType, t.Shape, t.Bytes.ToArray()); }
        SafetensorsWriter.Write(Path.Combine(dir.Path, "a.safetensors"), names.Take(half).Select(E));
        SafetensorsWriter.Write(Path.Combine(dir.Path, "b.safetensors"), names.Skip(half).Select(E));
        var map = string.Join(",", names.Select((n, i) => $"\"{n}\":\"{(i < half ? "a" : "b")}.safetensors\""));
        File.WriteAllText(Path.Combine(dir.Path, "idx.json"), "{\"metadata\":{},\"weight_map\":{" + map + "}}");
        using var sharded = ShardedTensorFile.Open(Path.Combine(dir.Path, "idx.json"), SafetensorsFile.Open);
        Assert.Equal(names.Count, sharded.Names.Count);
        foreach (var n in names) Assert.Equal(src.Get(n).ToFloat32(), sharded.Get(n).ToFloat32());
    }
}
