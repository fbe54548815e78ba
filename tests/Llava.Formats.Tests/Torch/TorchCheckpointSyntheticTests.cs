using System.Runtime.InteropServices;
using Llava.Formats.Torch;
using Llava.Tensors;

namespace Llava.Formats.Tests.Torch;

/// <summary>Hand-built checkpoints: dtypes, layouts, pickle variants and malformations the fixtures do not cover.</summary>
public sealed class TorchCheckpointSyntheticTests : IDisposable
{
    readonly TempFiles temp = new();
    public void Dispose() => temp.Dispose();

    static byte[] Bytes<T>(params T[] values) where T : unmanaged => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
    static float[] Range(int n) => Enumerable.Range(0, n).Select(i => (float)i).ToArray();

    string Write(byte[] pickle, Dictionary<string, byte[]> storages, string byteorder = "little", bool zip64Fields = false) =>
        temp.Write(TestZipWriter.Checkpoint("archive", pickle, storages, byteorder, zip64Fields).ToArray());

    /// <summary>One F32 tensor "w" over storage "0" holding 0, 1, 2, ... n-1.</summary>
    string OneTensor(int storageNumel, long offset, long[] size, long[] stride, bool zip64Fields = false) =>
        Write(PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "0", storageNumel, offset, size, stride))),
              new() { ["0"] = Bytes(Range(storageNumel)) }, zip64Fields: zip64Fields);

    ModelFormatException Refused(byte[] pickle, Dictionary<string, byte[]>? storages = null)
    {
        var path = Write(pickle, storages ?? new() { ["0"] = Bytes(Range(8)) });
        var e = Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Null(e.InnerException);
        return e;
    }

    [Fact]
    public void EveryStorageTypeMapsToItsDType()
    {
        var storages = new Dictionary<string, byte[]>
        {
            ["f32"] = Bytes(1.5f, -2f), ["f16"] = Bytes((Half)1.5f, (Half)(-2f)), ["f64"] = Bytes(1.5, -2.0),
            ["i64"] = Bytes(5L, -7L), ["i32"] = Bytes(5, -7), ["i16"] = Bytes((short)5, (short)-7),
            ["i8"] = Bytes((sbyte)5, (sbyte)-7), ["u8"] = Bytes((byte)5, (byte)250), ["bool"] = Bytes((byte)1, (byte)0),
            ["bf16"] = Bytes((ushort)0x3fc0, (ushort)0xc000),
        };
        (string Name, string Type, DType DType)[] cases =
        [
            ("f32", "FloatStorage", DType.F32), ("f16", "HalfStorage", DType.F16), ("f64", "DoubleStorage", DType.F64),
            ("bf16", "BFloat16Storage", DType.BF16), ("i64", "LongStorage", DType.I64), ("i32", "IntStorage", DType.I32),
            ("i16", "ShortStorage", DType.I16), ("i8", "CharStorage", DType.I8), ("u8", "ByteStorage", DType.U8),
            ("bool", "BoolStorage", DType.Bool),
        ];
        var pickle = PickleBuilder.StateDict(cases.Select(c => (c.Name, (Action<PickleBuilder>)(p => p.Tensor(c.Type, c.Name, 2, 0, [2], [1])))).ToArray());
        using var ck = TorchCheckpoint.Open(Write(pickle, storages));
        Assert.Equal(cases.Select(c => c.Name), ck.Names);
        foreach (var c in cases)
        {
            var t = ck.Get(c.Name);
            Assert.Equal(c.DType, t.DType);
            Assert.Equal([2L], t.Shape);
            Assert.Equal(storages[c.Name], t.Bytes.ToArray());
            if (c.DType.IsFloat()) Assert.Equal([1.5f, -2f], t.ToFloat32());
        }
        Assert.Equal([5L, -7], ck.Get("i64").ToInt64());
        Assert.Equal([5L, -7], ck.Get("i8").ToInt64());
        Assert.Equal([5L, 250], ck.Get("u8").ToInt64());
    }

    [Fact]
    public void Zip64SizeFieldsAreHonoured()
    {
        using var ck = TorchCheckpoint.Open(OneTensor(6, 0, [2, 3], [3, 1], zip64Fields: true));
        Assert.Equal(Range(6), ck.Get("w").ToFloat32());
    }

    [Fact]
    public void ArchiveWithoutZip64RecordsAndByteorderIsRead()
    {
        // torch 1.6-1.9 wrote no byteorder record; a re-packed archive may lack the ZIP64 end records.
        var pickle = PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "0", 4, 1, [3], [1])));
        var zip = new TestZipWriter { WriteZip64End = false }.Add("old/data.pkl", pickle).Add("old/data/0", Bytes(Range(4)));
        using var ck = TorchCheckpoint.Open(temp.Write(zip.ToArray()));
        Assert.Equal([1f, 2, 3], ck.Get("w").ToFloat32());
    }

    [Fact]
    public void PermutedViewIsCopiedInRowMajorOrder()
    {
        // base is contiguous [2, 3, 4] at storage offset 2; permute(2, 1, 0) gives size [4, 3, 2], stride [1, 4, 12].
        using var ck = TorchCheckpoint.Open(OneTensor(26, 2, [4, 3, 2], [1, 4, 12]));
        var t = ck.Get("w");
        Assert.Equal([4L, 3, 2], t.Shape);
        var v = t.ToFloat32();
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 3; j++)
                for (int k = 0; k < 2; k++)
                    Assert.Equal(2 + k * 12 + j * 4 + i, v[(i * 3 + j) * 2 + k]);
    }

    [Fact]
    public void SlicedRowsAreCopiedWithContiguousInnerRuns()
    {
        // base[4, 5][:, 1:4]: size [4, 3], stride [5, 1], offset 1 (inner dimension dense, rows not).
        using var ck = TorchCheckpoint.Open(OneTensor(20, 1, [4, 3], [5, 1]));
        Assert.Equal([1f, 2, 3, 6, 7, 8, 11, 12, 13, 16, 17, 18], ck.Get("w").ToFloat32());
    }

    [Fact]
    public void ScalarAndEmptyTensorsAreSupported()
    {
        var pickle = PickleBuilder.StateDict(
            ("scalar", p => p.Tensor("FloatStorage", "0", 8, 5, [], [])),
            ("empty", p => p.Tensor("FloatStorage", "0", 8, 8, [0, 5], [5, 1])),
            ("ones", p => p.Tensor("FloatStorage", "0", 8, 3, [1, 1, 2], [7, 9, 1])));
        using var ck = TorchCheckpoint.Open(Write(pickle, new() { ["0"] = Bytes(Range(8)) }));
        Assert.Equal([5f], ck.Get("scalar").ToFloat32());
        Assert.Empty(ck.Get("scalar").Shape);
        Assert.Equal(0, ck.Get("empty").ElementCount);
        Assert.Equal([3f, 4], ck.Get("ones").ToFloat32());
    }

    [Fact]
    public void ProtocolFourPickleWithStackGlobalAndMemoize()
    {
        // What pickle protocol 4 would produce: FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE, BINGET.
        var p = new PickleBuilder().Proto(4).Op(0x95).Raw(0, 0, 0, 0, 0, 0, 0, 0);
        p.ShortStr("collections").ShortStr("OrderedDict").Op(0x93).Op(0x94) // memo 0
         .EmptyTuple().Reduce().Op(0x94) // memo 1: the dict
         .ShortStr("w")
         .ShortStr("torch._utils").ShortStr("_rebuild_parameter").Op(0x93)
         .Mark()
         .ShortStr("torch._utils").ShortStr("_rebuild_tensor_v2").Op(0x93)
         .Mark()
         .Mark().ShortStr("storage").ShortStr("torch").ShortStr("HalfStorage").Op(0x93).ShortStr("0").ShortStr("cpu").Int(4).Tuple().BinPersId()
         .Int(0).IntTuple(2, 2).IntTuple(2, 1).False()
         .Op('h').Raw(0).EmptyTuple().Reduce() // OrderedDict() again via BINGET
         .Tuple().Reduce()
         .Op(0x88).Op('h').Raw(0).EmptyTuple().Reduce()
         .Tuple().Reduce()
         .SetItem()
         // state_dict()'s _metadata attribute arrives as BUILD on the OrderedDict
         .EmptyDict().Str("_metadata").EmptyDict().Str("").EmptyDict().Str("version").Int(1).SetItem().SetItem().SetItem().Op('b')
         .Stop();
        using var ck = TorchCheckpoint.Open(Write(p.ToArray(), new() { ["0"] = Bytes((Half)1, (Half)2, (Half)3, (Half)4) }));
        Assert.Equal(DType.F16, ck.Get("w").DType);
        Assert.Equal([1f, 2, 3, 4], ck.Get("w").ToFloat32());
    }

    [Fact]
    public void NonTensorValuesAreSkipped()
    {
        var pickle = PickleBuilder.StateDict(
            ("w", p => p.Tensor("FloatStorage", "0", 2, 0, [2], [1])),
            ("step", p => p.Int(7)),
            ("note", p => p.Str("hello")));
        using var ck = TorchCheckpoint.Open(Write(pickle, new() { ["0"] = Bytes(1f, 2f) }));
        Assert.Equal(["w"], ck.Names);
    }

    [Theory]
    [InlineData("posix", "system")]
    [InlineData("subprocess", "Popen")]
    [InlineData("builtins", "exec")]
    [InlineData("torch", "load")]
    [InlineData("torch.storage", "_load_from_bytes")]
    [InlineData("numpy.core.multiarray", "_reconstruct")]
    public void GlobalsOutsideTheAllowListAreRefused(string module, string name)
    {
        var pickle = new PickleBuilder().Proto(2).Global(module, name).Str("x").Op(0x85).Reduce().Stop().ToArray();
        var e = Refused(pickle);
        Assert.Contains($"refusing to load: the pickle asks for global '{module}.{name}'; only tensor rebuilds are allowed", e.Message);
    }

    [Fact]
    public void UnsupportedStorageTypeIsNamed()
    {
        var e = Refused(PickleBuilder.StateDict(("w", p => p.Tensor("ComplexFloatStorage", "0", 2, 0, [2], [1]))));
        Assert.Contains("unsupported storage type 'torch.ComplexFloatStorage'", e.Message);
    }

    [Fact]
    public void ObjectConstructionOpcodesAreRefused()
    {
        var pickle = new PickleBuilder().Proto(2).Global("collections", "OrderedDict").EmptyTuple().Op(0x81).Stop().ToArray();
        Assert.Contains("constructs an object", Refused(pickle).Message);
    }

    [Fact]
    public void CallingAStorageTypeIsRefused()
    {
        var pickle = new PickleBuilder().Proto(2).Global("torch", "FloatStorage").EmptyTuple().Reduce().Stop().ToArray();
        Assert.Contains("'torch.FloatStorage' cannot be called", Refused(pickle).Message);
    }

    [Fact]
    public void UnknownOpcodeIsRefused() =>
        Assert.Contains("unsupported pickle opcode 0xff", Refused(new PickleBuilder().Proto(2).Op(0xff).Stop().ToArray()).Message);

    [Fact]
    public void TruncatedPickleIsRefused()
    {
        var full = PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "0", 8, 0, [8], [1])));
        foreach (int cut in new[] { 0, 1, 2, 7, 20, full.Length / 2, full.Length - 2, full.Length - 1 })
        {
            var e = Refused(full[..cut]);
            Assert.Contains("data.pkl", e.Message);
            Assert.Matches("truncated|underflow|MARK", e.Message);
        }
    }

    [Fact]
    public void MemoReadBeforeWriteIsRefused() =>
        Assert.Contains("memo entry 3", Refused(new PickleBuilder().Proto(2).Op('h').Raw(3).Stop().ToArray()).Message);

    [Fact]
    public void StackUnderflowIsRefused() =>
        Assert.Contains("stack underflow", Refused(new PickleBuilder().Proto(2).Op('s').Stop().ToArray()).Message);

    [Fact]
    public void ViewPastTheStorageIsRefused()
    {
        var e = Refused(PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "0", 8, 4, [2, 3], [3, 1]))));
        Assert.Contains("reaches element 9", e.Message);
        Assert.Contains("storage '0' has only 8 elements", e.Message);
    }

    [Fact]
    public void StorageLargerThanItsEntryIsRefused()
    {
        var e = Refused(PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "0", 9, 0, [9], [1]))));
        Assert.Contains("storage '0' claims 9 F32 elements (36 bytes) but data/0 holds only 32 bytes", e.Message);
    }

    [Fact]
    public void OverflowingSizesAreRefused()
    {
        Assert.Contains("overflow", Refused(PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "0", 8, 0, [1L << 62, 4], [0, 0])))).Message);
        Assert.Contains("overflow", Refused(PickleBuilder.StateDict(("w", p => p.Tensor("DoubleStorage", "0", 1L << 61, 0, [1], [1])))).Message);
        Assert.Contains("negative", Refused(PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "0", 8, 0, [-1], [1])))).Message);
        Assert.Contains("negative", Refused(PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "0", 8, -1, [1], [1])))).Message);
    }

    [Fact]
    public void BroadcastViewCannotBlowUpMemory()
    {
        // stride 0 over one element: valid for torch, but copying it row-major would need 4 TiB.
        var e = Refused(PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "0", 8, 0, [1L << 40], [0]))));
        Assert.Contains("more memory than the file size justifies", e.Message);
    }

    [Fact]
    public void MissingStorageEntryIsRefused() =>
        Assert.Contains("storage '7' has no 'data/7' entry", Refused(PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "7", 2, 0, [2], [1])))).Message);

    [Fact]
    public void ForeignPersistentIdIsRefused()
    {
        var pickle = PickleBuilder.StateDict(("w", p => p.TensorWithPid(q => q.Mark().Str("module").Str("x").Str("y").Tuple(), 0, [1], [1])));
        Assert.Contains("unsupported persistent id ('module'", Refused(pickle).Message);
    }

    [Fact]
    public void TopLevelMustBeADict() =>
        Assert.Contains("not a state dict", Refused(new PickleBuilder().Proto(2).Op(']').Stop().ToArray()).Message);

    [Fact]
    public void CompressedEntryIsRefused()
    {
        var pickle = PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "0", 2, 0, [2], [1])));
        var zip = new TestZipWriter().Add("a/data.pkl", pickle).Add("a/data/0", Bytes(1f, 2f), method: 8);
        var path = temp.Write(zip.ToArray());
        var e = Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Open(path));
        Assert.Contains("zip entry 'a/data/0' is compressed (method 8)", e.Message);
    }

    [Fact]
    public void BigEndianCheckpointIsRefused()
    {
        var pickle = PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "0", 2, 0, [2], [1])));
        var path = Write(pickle, new() { ["0"] = Bytes(1f, 2f) }, byteorder: "big");
        Assert.Contains("big-endian", Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Open(path)).Message);
    }

    [Fact]
    public void ArchiveWithoutDataPklIsRefused()
    {
        var path = temp.Write(new TestZipWriter().Add("readme.txt", "hi"u8.ToArray()).ToArray());
        Assert.Contains("data.pkl", Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Open(path)).Message);
    }

    [Fact]
    public void DuplicateEntriesAreRefused()
    {
        var pickle = PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "0", 2, 0, [2], [1])));
        var zip = new TestZipWriter().Add("a/data.pkl", pickle).Add("a/data/0", Bytes(1f, 2f)).Add("a/data/0", Bytes(3f, 4f));
        var path = temp.Write(zip.ToArray());
        Assert.Contains("appears twice", Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Open(path)).Message);
    }

    [Fact]
    public void LegacyStorageViewsAreResolved()
    {
        // Old torch pickled storage slices as view_metadata (view_key, offset, size) of a root storage.
        var pickle = new PickleBuilder().Proto(2).Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark()
            .Str("a").TensorWithPid(q => q.Mark().Str("storage").Global("torch", "FloatStorage").Str("r").Str("cpu").Int(6)
                .Mark().Str("v").Int(2).Int(3).Tuple().Tuple(), 1, [2], [1])
            .Str("b").Tensor("FloatStorage", "r", 6, 0, [2, 3], [1, 2], legacy: true)
            .SetItems().Stop().ToArray();
        using var ck = TorchCheckpoint.Open(temp.Write(Legacy(pickle, ["r"], [Bytes(Range(6))])));
        Assert.True(ck.IsLegacyFormat);
        Assert.Equal([3f, 4], ck.Get("a").ToFloat32());
        Assert.Equal([0f, 2, 4, 1, 3, 5], ck.Get("b").ToFloat32());
    }

    [Fact]
    public void LegacyRecordCountMismatchIsRefused()
    {
        var pickle = PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "r", 6, 0, [6], [1], legacy: true)));
        var bytes = Legacy(pickle, ["r"], [Bytes(Range(5))]);
        var path = temp.Write(bytes);
        var e = Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Open(path));
        Assert.Contains("legacy storage 'r' record holds 5 elements but its persistent id says 6", e.Message);
    }

    [Fact]
    public void LegacyBigEndianIsRefused()
    {
        var pickle = PickleBuilder.StateDict(("w", p => p.Tensor("FloatStorage", "r", 1, 0, [1], [1], legacy: true)));
        var path = temp.Write(Legacy(pickle, ["r"], [Bytes(1f)], littleEndian: false));
        Assert.Contains("big-endian", Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Open(path)).Message);
    }

    [Fact]
    public void LegacyWithoutMagicIsRefused()
    {
        var path = temp.Write(PickleBuilder.StateDict());
        Assert.Contains("magic number", Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Open(path)).Message);
    }

    /// <summary>The pre-1.6 layout: magic, protocol, sys info, object, key list pickles, then count + bytes per key.</summary>
    static byte[] Legacy(byte[] objectPickle, string[] keys, byte[][] storages, bool littleEndian = true)
    {
        var o = new MemoryStream();
        o.Write(new PickleBuilder().Proto(2).Op(0x8a).Raw(10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19).Stop().ToArray());
        o.Write(new PickleBuilder().Proto(2).Int(1001).Stop().ToArray());
        o.Write(new PickleBuilder().Proto(2).EmptyDict().Mark().Str("protocol_version").Int(1001)
            .Str("little_endian").Op(littleEndian ? (byte)0x88 : (byte)0x89).SetItems().Stop().ToArray());
        o.Write(objectPickle);
        var list = new PickleBuilder().Proto(2).Op(']').Mark();
        foreach (var k in keys) list.Str(k);
        o.Write(list.Op('e').Stop().ToArray());
        foreach (var s in storages)
        {
            o.Write(BitConverter.GetBytes((long)(s.Length / 4))); // element count (F32 in these tests)
            o.Write(s);
        }
        return o.ToArray();
    }
}
