using System.Runtime.InteropServices;
using Llava.Formats;
using Llava.Formats.Gguf;
using Llava.Tensors;

namespace Llava.Tests.Gguf;

/// <summary>GgufWriter → GgufFile: every metadata type, nested arrays, alignment, tensors of several ggml types.</summary>
public sealed class GgufRoundTripTests
{
    static byte[] Floats(params float[] v) => MemoryMarshal.AsBytes<float>(v).ToArray();

    static GgufWriter Sample(uint? alignment = null)
    {
        var w = new GgufWriter();
        if (alignment is uint a) w.AddUInt32("general.alignment", a);
        w.AddString("general.architecture", "llama")
         .Add("t.u8", GgufValue.UInt8(250))
         .Add("t.i8", GgufValue.Int8(-100))
         .Add("t.u16", GgufValue.UInt16(65000))
         .Add("t.i16", GgufValue.Int16(-32000))
         .AddUInt32("t.u32", 4_000_000_000)
         .AddInt32("t.i32", -2_000_000_000)
         .AddFloat32("t.f32", 1e-5f)
         .AddBool("t.bool_true", true)
         .AddBool("t.bool_false", false)
         .AddString("t.str", "héllo ▁ wörld")
         .AddString("t.empty", "")
         .AddUInt64("t.u64", ulong.MaxValue)
         .Add("t.i64", GgufValue.Int64(long.MinValue))
         .Add("t.f64", GgufValue.Float64(Math.PI))
         .AddStringArray("t.strs", ["<unk>", "<s>", "", "▁the"])
         .AddFloat32Array("t.floats", [0.5f, -1.25f, float.NegativeInfinity])
         .AddInt32Array("t.ints", [1, -2, 3])
         .Add("t.empty_array", GgufValue.Array(GgufValueType.UInt64, Array.Empty<ulong>()))
         .Add("t.bools", GgufValue.Array(GgufValueType.Bool, new[] { true, false, true }))
         .Add("t.nested", GgufValue.Array(GgufValueType.Array, new[]
         {
             new GgufArray(GgufValueType.Int16, new short[] { 1, 2 }),
             new GgufArray(GgufValueType.Array, new[] { new GgufArray(GgufValueType.String, new[] { "deep" }) }),
         }));
        w.AddTensor("w.f32", GgmlType.F32, [3, 2], Floats(1, 2, 3, 4, 5, 6));
        w.AddTensor("w.f16", GgmlType.F16, [3], MemoryMarshal.AsBytes<Half>([(Half)1.5f, (Half)(-2f), (Half)0.25f]).ToArray());
        w.AddTensor("w.bf16", GgmlType.BF16, [2], [0x80, 0x3f, 0x00, 0xc0]);
        var q8 = new byte[34 * 2];
        for (int i = 0; i < q8.Length; i++) q8[i] = (byte)i;
        w.AddTensor("w.q8", GgmlType.Q8_0, [32, 2], q8);
        w.AddTensor("w.i32", GgmlType.I32, [2, 1, 1, 2], MemoryMarshal.AsBytes<int>([7, -8, 9, 10]).ToArray());
        return w;
    }

    [Fact]
    public void EveryValueType_RoundTrips()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "t.gguf");
        Sample().Write(path);
        using var g = GgufFile.Open(path);
        var m = g.Metadata;
        Assert.Equal(3u, g.Version);
        Assert.Equal(32u, g.Alignment);
        Assert.Equal("llama", m.GetString("general.architecture"));
        Assert.Equal(GgufValueType.UInt8, m["t.u8"].Type);
        Assert.Equal(250, m.GetInt("t.u8"));
        Assert.Equal(-100, m.GetInt("t.i8"));
        Assert.Equal(65000, m.GetInt("t.u16"));
        Assert.Equal(-32000, m.GetInt("t.i16"));
        Assert.Equal(4_000_000_000, m.GetInt("t.u32"));
        Assert.Equal(-2_000_000_000, m.GetInt("t.i32"));
        Assert.Equal(1e-5f, (float)m["t.f32"].Raw);
        Assert.True(m.GetBool("t.bool_true"));
        Assert.False(m.GetBool("t.bool_false"));
        Assert.Equal("héllo ▁ wörld", m.GetString("t.str"));
        Assert.Equal("", m.GetString("t.empty"));
        Assert.Equal(ulong.MaxValue, (ulong)m["t.u64"].Raw);
        Assert.Equal(long.MinValue, m.GetInt("t.i64"));
        Assert.Equal(Math.PI, m.GetFloat("t.f64"));
        Assert.Equal(["<unk>", "<s>", "", "▁the"], m.GetStringArray("t.strs"));
        Assert.Equal([0.5, -1.25, double.NegativeInfinity], m.GetFloatArray("t.floats"));
        Assert.Equal([1L, -2, 3], m.GetIntArray("t.ints"));
        Assert.Equal(0, m.GetArray("t.empty_array").Count);
        Assert.Equal(GgufValueType.UInt64, m.GetArray("t.empty_array").ElementType);
        Assert.Equal([true, false, true], (bool[])m.GetArray("t.bools").Items);
        var nested = (GgufArray[])m.GetArray("t.nested").Items;
        Assert.Equal([(short)1, (short)2], (short[])nested[0].Items);
        Assert.Equal("deep", ((GgufArray[])nested[1].Items)[0].AsStrings()[0]);
        // Keys keep file order.
        Assert.Equal("general.architecture", m.Keys[0]);
        Assert.Equal("t.nested", m.Keys[^1]);
        // A getter of the wrong type is a format error naming the key.
        var e = Assert.Throws<ModelFormatException>(() => m.GetString("t.u8"));
        Assert.Contains("t.u8", e.Message);
    }

    [Fact]
    public void Tensors_RoundTrip_WithAlignedOffsets_AndPyTorchShapesInTheTensorFileView()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "t.gguf");
        Sample().Write(path);
        using var g = GgufFile.Open(path);
        Assert.Equal(5, g.Tensors.Count);
        Assert.Equal(0, g.DataOffset % 32);
        foreach (var t in g.Tensors) Assert.Equal(0, t.Offset % 32);

        var f32 = g.GetInfo("w.f32");
        Assert.Equal([3L, 2], f32.Dimensions);
        Assert.Equal(24, f32.ByteSize);
        var st = g.Get("w.f32");
        Assert.Equal(DType.F32, st.DType);
        Assert.Equal([2L, 3], st.Shape);
        Assert.Equal([1f, 2, 3, 4, 5, 6], st.ToFloat32());
        Assert.Equal([1.5f, -2f, 0.25f], g.Get("w.f16").ToFloat32());
        Assert.Equal([1f, -2f], g.Get("w.bf16").ToFloat32());
        Assert.Equal([2L, 1, 1, 2], g.Get("w.i32").Shape);
        Assert.Equal([7L, -8, 9, 10], g.Get("w.i32").ToInt64());

        // Quantized tensors: in the view with their ggml type (raw blocks, used in place by the kernels), and in the GGUF API.
        var q8Stored = g.Get("w.q8");
        Assert.Equal(GgmlType.Q8_0, q8Stored.Quant);
        Assert.Equal(68, q8Stored.ByteLength);
        var q8 = g.GetInfo("w.q8");
        Assert.Equal(GgmlType.Q8_0, q8.Type);
        Assert.Equal(68, q8.ByteSize);
        Assert.Equal(64, q8.ElementCount);
        var bytes = q8.Bytes.ToArray();
        for (int i = 0; i < bytes.Length; i++) Assert.Equal((byte)i, bytes[i]);
    }

    [Fact]
    public void GeneralAlignment_IsHonoured()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "t.gguf");
        Sample(alignment: 64).Write(path);
        using var g = GgufFile.Open(path);
        Assert.Equal(64u, g.Alignment);
        Assert.Equal(0, g.DataOffset % 64);
        foreach (var t in g.Tensors) Assert.Equal(0, t.Offset % 64);
        Assert.Equal([1f, -2f], g.Get("w.bf16").ToFloat32());
    }

    [Fact]
    public void Version2_IsRead()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "t.gguf");
        Sample().Write(path);
        var bytes = File.ReadAllBytes(path);
        bytes[4] = 2;   // v2 and v3 share the layout (v3 only declared big-endian files possible)
        File.WriteAllBytes(path, bytes);
        using var g = GgufFile.Open(path);
        Assert.Equal(2u, g.Version);
        Assert.Equal([1f, 2, 3, 4, 5, 6], g.Get("w.f32").ToFloat32());
    }

    [Fact]
    public void EmptyFile_WithNoTensors_RoundTrips()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "t.gguf");
        new GgufWriter().AddString("general.architecture", "clip").Write(path);
        using var g = GgufFile.Open(path);
        Assert.Empty(g.Tensors);
        Assert.Single(g.Metadata.Keys);
    }

    [Fact]
    public void Writer_RejectsBadInput()
    {
        var w = new GgufWriter();
        Assert.Throws<ArgumentException>(() => w.AddTensor("x", GgmlType.F32, [3], new byte[8]));
        Assert.Throws<ArgumentException>(() => w.AddTensor("q", GgmlType.Q8_0, [31], new byte[34]));
        Assert.Throws<ArgumentException>(() => w.AddTensor("d", GgmlType.F32, [1, 1, 1, 1, 1], new byte[4]));
        w.AddString("k", "v");
        Assert.Throws<ArgumentException>(() => w.AddString("k", "again"));
        Assert.Throws<ArgumentException>(() => w.AddUInt32("general.alignment", 48));
        Assert.Throws<ArgumentException>(() => new GgufArray(GgufValueType.Int32, new long[1]));
    }
}
