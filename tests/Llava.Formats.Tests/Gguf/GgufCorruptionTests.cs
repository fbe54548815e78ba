using Llava.Formats;
using Llava.Formats.Gguf;
using Llava.Tensors;

namespace Llava.Tests.Gguf;

/// <summary>Every kind of broken GGUF gives one ModelFormatException naming the file and offset, never another exception.</summary>
public sealed class GgufCorruptionTests : IDisposable
{
    readonly TempDir dir = new();
    int counter;

    public void Dispose() => dir.Dispose();

    string Save(byte[] bytes)
    {
        var path = Path.Combine(dir.Path, $"f{++counter}.gguf");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>Opens the bytes and expects a ModelFormatException whose message names the file and contains <paramref name="expected"/>.</summary>
    ModelFormatException Fails(byte[] bytes, string expected)
    {
        var path = Save(bytes);
        var e = Assert.Throws<ModelFormatException>(() => GgufFile.Open(path).Dispose());
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
        return e;
    }

    /// <summary>A valid file: 2 metadata entries, an F32 [4] and an F16 [8] tensor.</summary>
    static RawGguf ValidPrefix(out long dataEnd)
    {
        var r = new RawGguf().Header(2, 2).Str("general.architecture").U32(8).Str("x").KvU32("a.b", 7)
            .TensorInfo("a", 0, [4], 0).TensorInfo("b", 1, [8], 32).PadTo(32);
        r.Bytes(new byte[16]).PadTo(32).Bytes(new byte[16]);
        dataEnd = r.Position;
        return r;
    }

    static byte[] Valid() => ValidPrefix(out _).ToArray();

    [Fact]
    public void TheBaseFileIsValid()
    {
        using var g = GgufFile.Open(Save(Valid()));
        Assert.Equal(2, g.Tensors.Count);
        Assert.Equal(7, g.Metadata.GetInt("a.b"));
    }

    [Fact]
    public void BadMagic() { var b = Valid(); b[0] = (byte)'X'; Fails(b, "bad magic"); }

    [Fact]
    public void EmptyAndTinyFiles() { Fails([], "not a GGUF file"); Fails([0x47, 0x47], "not a GGUF file"); }

    [Theory]
    [InlineData(1u)]
    [InlineData(4u)]
    [InlineData(0xffffffffu)]
    public void UnsupportedVersion(uint v) { var b = Valid(); BitConverter.GetBytes(v).CopyTo(b, 4); Fails(b, "offset 4: "); }

    [Fact]
    public void AbsurdTensorCount() { var b = Valid(); BitConverter.GetBytes(ulong.MaxValue / 3).CopyTo(b, 8); Fails(b, "tensor count"); }

    [Fact]
    public void AbsurdMetadataCount() { var b = Valid(); BitConverter.GetBytes(1UL << 40).CopyTo(b, 16); Fails(b, "offset 16: metadata entry count"); }

    [Fact]
    public void KeyLengthPastTheEnd() { var b = Valid(); BitConverter.GetBytes(1UL << 20).CopyTo(b, 24); Fails(b, "offset 24: metadata key length"); }

    [Fact]
    public void StringLengthAbsurd() { var b = Valid(); BitConverter.GetBytes(ulong.MaxValue).CopyTo(b, 24); Fails(b, "runs past the end"); }

    [Fact]
    public void UnknownValueType() =>
        Fails(new RawGguf().Header(0, 1).Str("k").U32(13).U32(0).ToArray(), "unknown metadata value type 13");

    [Fact]
    public void BoolNotZeroOrOne() =>
        Fails(new RawGguf().Header(0, 1).Str("k").U32(7).U8(2).ToArray(), "bool value 2");

    [Fact]
    public void InvalidUtf8() =>
        Fails(new RawGguf().Header(0, 1).Str("k").U32(8).U64(2).Bytes([0xc3, 0x28]).ToArray(), "not valid UTF-8");

    [Fact]
    public void DuplicateKey() =>
        Fails(new RawGguf().Header(0, 2).KvU32("k", 1).KvU32("k", 2).ToArray(), "duplicate metadata key 'k'");

    [Fact]
    public void ArrayCountPastTheEnd() =>
        Fails(new RawGguf().Header(0, 1).Str("k").U32(9).U32(4).U64(1_000_000).U32(1).ToArray(), "does not fit");

    [Fact]
    public void ArrayNestedTooDeep()
    {
        var r = new RawGguf().Header(0, 1).Str("k").U32(9);
        for (int i = 0; i < 20; i++) r.U32(9).U64(1);
        r.U32(4).U64(0);
        Fails(r.ToArray(), "nested deeper");
    }

    [Fact]
    public void AlignmentWrongTypeOrNotPowerOfTwo()
    {
        Fails(new RawGguf().Header(0, 1).KvU32("general.alignment", 48).ToArray(), "general.alignment 48");
        Fails(new RawGguf().Header(0, 1).Str("general.alignment").U32(5).U32(32).ToArray(), "general.alignment is Int32");
        Fails(new RawGguf().Header(0, 1).KvU32("general.alignment", 0).ToArray(), "general.alignment 0");
    }

    [Fact]
    public void TooManyDimensions() =>
        Fails(new RawGguf().Header(1, 0).TensorInfo("t", 0, [1, 1, 1, 1, 1], 0).PadTo(32).Bytes(new byte[32]).ToArray(), "5 dimensions");

    [Fact]
    public void AbsurdDimensionCount() =>
        Fails(new RawGguf().Header(1, 0).Str("t").U32(uint.MaxValue).Bytes(new byte[64]).ToArray(), "4294967295 dimensions");

    [Fact]
    public void ElementCountOverflow() =>
        Fails(new RawGguf().Header(1, 0).TensorInfo("t", 0, [1UL << 40, 1UL << 40], 0).PadTo(32).ToArray(), "overflows");

    [Fact]
    public void UnknownGgmlType()
    {
        Fails(new RawGguf().Header(1, 0).TensorInfo("t", 4, [4], 0).PadTo(32).Bytes(new byte[32]).ToArray(), "unsupported ggml type 4");
        Fails(new RawGguf().Header(1, 0).TensorInfo("t", 999, [4], 0).PadTo(32).Bytes(new byte[32]).ToArray(), "unsupported ggml type 999");
    }

    [Fact]
    public void RowNotAWholeNumberOfBlocks() =>
        Fails(new RawGguf().Header(1, 0).TensorInfo("t", (uint)GgmlType.Q8_0, [31], 0).PadTo(32).Bytes(new byte[64]).ToArray(), "block size 32");

    [Fact]
    public void UnalignedOffset() =>
        Fails(new RawGguf().Header(1, 0).TensorInfo("t", 0, [4], 8).PadTo(32).Bytes(new byte[64]).ToArray(), "not a multiple of the alignment");

    [Fact]
    public void OffsetPastTheEnd() =>
        Fails(new RawGguf().Header(1, 0).TensorInfo("t", 0, [4], 1UL << 40).PadTo(32).Bytes(new byte[64]).ToArray(), "past its end");

    [Fact]
    public void SizeLiesAboutTheData() =>
        Fails(new RawGguf().Header(1, 0).TensorInfo("t", 0, [1000], 0).PadTo(32).Bytes(new byte[64]).ToArray(), "tensor 't' data [0, 4000)");

    [Fact]
    public void OverlappingTensors() =>
        Fails(new RawGguf().Header(2, 0).TensorInfo("a", 0, [16], 0).TensorInfo("b", 0, [4], 32).PadTo(32).Bytes(new byte[64]).ToArray(), "overlaps");

    [Fact]
    public void DuplicateTensor() =>
        Fails(new RawGguf().Header(2, 0).TensorInfo("a", 0, [4], 0).TensorInfo("a", 0, [4], 32).PadTo(32).Bytes(new byte[64]).ToArray(), "duplicate tensor name 'a'");

    [Fact]
    public void TruncationSweep_EveryPrefixFails()
    {
        var full = ValidPrefix(out long dataEnd).ToArray();
        // Every prefix that cuts into the header, metadata, tensor infos or any tensor's bytes must fail cleanly.
        for (int len = 0; len < dataEnd; len++)
        {
            var path = Save(full[..len]);
            var e = Assert.Throws<ModelFormatException>(() => GgufFile.Open(path).Dispose());
            Assert.Contains(path, e.Message);
            File.Delete(path);
        }
    }

    [Fact]
    public void RandomCorruption_GivesOnlyModelFormatException()
    {
        var full = Valid();
        var rng = new Random(1234);
        int failures = 0;
        for (int trial = 0; trial < 400; trial++)
        {
            var b = (byte[])full.Clone();
            int flips = 1 + rng.Next(4);
            for (int k = 0; k < flips; k++) b[rng.Next(b.Length)] = (byte)rng.Next(256);
            if (rng.Next(4) == 0) b = b[..rng.Next(b.Length)];
            var path = Save(b);
            try
            {
                using var g = GgufFile.Open(path);
                foreach (var t in g.Tensors) _ = t.Bytes.Length;   // whatever opened must be readable
            }
            catch (ModelFormatException) { failures++; }
            File.Delete(path);
        }
        Assert.True(failures > 100, $"only {failures} corruptions detected");
    }
}
