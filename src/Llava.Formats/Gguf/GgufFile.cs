using System.Buffers.Binary;
using System.Text;
using Llava.Tensors;

namespace Llava.Formats.Gguf;

/// <summary>
/// A memory-mapped GGUF file (versions 2 and 3, little-endian): header, typed metadata, tensor infos and the data
/// section. Every count, length, dimension and offset is checked against the file size (with checked arithmetic and
/// caps) before anything is allocated or handed out; each kind of corruption is one <see cref="ModelFormatException"/>
/// naming the file, the offset and what is wrong.
/// As an <see cref="ITensorFile"/> it exposes the tensors a <see cref="StoredTensor"/> can describe (F32, F16, BF16,
/// F64, I8..I64) with PyTorch-order shapes; quantized tensors are reached through <see cref="Tensors"/>.
/// </summary>
public sealed unsafe class GgufFile : ITensorFile
{
    public const uint Magic = 0x46554747; // "GGUF" read as a little-endian uint32
    public const uint DefaultAlignment = 32;
    /// <summary>Longest string accepted (keys, values, tensor names): far above any real chat template.</summary>
    public const long MaxStringBytes = 64L << 20;
    /// <summary>Most elements in one metadata array (real vocabularies have ~10^5..10^6 entries).</summary>
    public const long MaxArrayElements = 1L << 28;
    /// <summary>Deepest nesting of arrays inside arrays.</summary>
    public const int MaxArrayDepth = 8;
    public const int MaxDimensions = 4;
    public const long MaxTensors = 1L << 20;
    public const long MaxMetadataEntries = 1L << 20;
    /// <summary>Largest general.alignment accepted.</summary>
    public const uint MaxAlignment = 1u << 20;

    readonly MappedFile file;
    readonly List<GgufTensorInfo> tensors = new();
    readonly Dictionary<string, GgufTensorInfo> byName = new(StringComparer.Ordinal);
    readonly Dictionary<string, StoredTensor> stored = new(StringComparer.Ordinal);

    public string Source => file.Path;
    public uint Version { get; private set; }
    public GgufMetadata Metadata { get; }
    public uint Alignment { get; private set; } = DefaultAlignment;
    /// <summary>Offset of the data section from the start of the file.</summary>
    public long DataOffset { get; private set; }
    /// <summary>Every tensor, in file order, whatever its type.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors => tensors;
    /// <summary>Names of the tensors available as <see cref="StoredTensor"/> (plain types, and block-quantized types with <c>Quant</c> set).</summary>
    public IReadOnlyCollection<string> Names => stored.Keys;

    GgufFile(MappedFile file)
    {
        this.file = file;
        Metadata = new GgufMetadata(file.Path);
    }

    public static GgufFile Open(string path)
    {
        var file = new MappedFile(path);
        try
        {
            var g = new GgufFile(file);
            g.Read();
            return g;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public bool TryGet(string name, out StoredTensor tensor) => stored.TryGetValue(name, out tensor!);

    /// <summary>Any tensor by name, quantized or not.</summary>
    public bool TryGetInfo(string name, out GgufTensorInfo info) => byName.TryGetValue(name, out info!);

    public GgufTensorInfo GetInfo(string name) =>
        byName.TryGetValue(name, out var t) ? t : throw new ModelFormatException($"{Source}: tensor '{name}' is missing");

    /// <summary>The StoredTensor dtype for a ggml type, or null for quantized types.</summary>
    public static DType? ToDType(GgmlType t) => t switch
    {
        GgmlType.F32 => DType.F32,
        GgmlType.F16 => DType.F16,
        GgmlType.BF16 => DType.BF16,
        GgmlType.F64 => DType.F64,
        GgmlType.I8 => DType.I8,
        GgmlType.I16 => DType.I16,
        GgmlType.I32 => DType.I32,
        GgmlType.I64 => DType.I64,
        _ => null,
    };

    void Read()
    {
        var r = new Reader(file);
        if (file.Length < 4) throw r.Error(0, $"not a GGUF file (only {file.Length} bytes)");
        uint magic = r.U32();
        if (magic != Magic)
            throw r.Error(0, $"not a GGUF file (bad magic 0x{magic:x8}, expected \"GGUF\")");
        Version = r.U32();
        if (Version is not (2 or 3))
            throw r.Error(4, Version == 1 ? "GGUF version 1 is not supported (convert the file again)" : $"unsupported GGUF version {Version} (supported: 2, 3)");
        long countAt = r.Position;
        ulong tensorCount = r.U64();
        ulong kvCount = r.U64();
        // Each tensor info takes at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes, each key/value
        // at least 8 + 4 + 1: a count that could not fit in the rest of the file is a lie, caught before any allocation.
        if (tensorCount > (ulong)MaxTensors || (long)tensorCount * 24 > r.Remaining)
            throw r.Error(countAt, $"tensor count {tensorCount} is impossible for a file of {file.Length} bytes");
        if (kvCount > (ulong)MaxMetadataEntries || (long)kvCount * 13 > r.Remaining)
            throw r.Error(countAt + 8, $"metadata entry count {kvCount} is impossible for a file of {file.Length} bytes");

        for (ulong i = 0; i < kvCount; i++)
        {
            long at = r.Position;
            string key = r.String("metadata key");
            if (key.Length == 0) throw r.Error(at, "empty metadata key");
            long typeAt = r.Position;
            var type = r.ValueType();
            var value = ReadValue(ref r, type, 0, typeAt);
            if (!Metadata.TryAdd(key, value)) throw r.Error(at, $"duplicate metadata key '{key}'");
        }

        if (Metadata.TryGet("general.alignment", out var align))
        {
            if (align.Type != GgufValueType.UInt32)
                throw r.Error(-1, $"general.alignment is {align.Type}, expected uint32");
            uint a = (uint)align.Raw;
            if (a == 0 || (a & (a - 1)) != 0 || a > MaxAlignment)
                throw r.Error(-1, $"general.alignment {a} is not a power of two up to {MaxAlignment}");
            Alignment = a;
        }

        var infos = new List<(string Name, GgmlType Type, long[] Dims, long Elements, long Bytes, long Offset, long At)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (ulong i = 0; i < tensorCount; i++)
        {
            long at = r.Position;
            string name = r.String("tensor name");
            if (!seen.Add(name)) throw r.Error(at, $"duplicate tensor name '{name}'");
            long dimsAt = r.Position;
            uint nDims = r.U32();
            if (nDims > MaxDimensions) throw r.Error(dimsAt, $"tensor '{name}' has {nDims} dimensions (at most {MaxDimensions})");
            var dims = new long[nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++)
            {
                long dAt = r.Position;
                ulong ne = r.U64();
                if (ne > long.MaxValue) throw r.Error(dAt, $"tensor '{name}' dimension {d} is {ne}");
                dims[d] = (long)ne;
                try { elements = checked(elements * (long)ne); }
                catch (OverflowException) { throw r.Error(dAt, $"tensor '{name}' element count overflows"); }
            }
            long typeAt = r.Position;
            uint rawType = r.U32();
            var type = (GgmlType)rawType;
            if (!Enum.IsDefined(type) || GgmlTypeInfo.Layout(type) is not var (blockSize, typeSize))
                throw r.Error(typeAt, $"tensor '{name}' has unsupported ggml type {rawType}");
            if (nDims > 0 && dims[0] % blockSize != 0)
                throw r.Error(dimsAt, $"tensor '{name}' row length {dims[0]} is not a multiple of the {type} block size {blockSize}");
            long bytes;
            try { bytes = checked(elements / blockSize * typeSize); }
            catch (OverflowException) { throw r.Error(dimsAt, $"tensor '{name}' byte size overflows"); }
            long offAt = r.Position;
            ulong offset = r.U64();
            if (offset > long.MaxValue) throw r.Error(offAt, $"tensor '{name}' offset {offset} is impossible");
            if ((long)offset % Alignment != 0)
                throw r.Error(offAt, $"tensor '{name}' offset {offset} is not a multiple of the alignment {Alignment}");
            infos.Add((name, type, dims, elements, bytes, (long)offset, offAt));
        }

        DataOffset = AlignUp(r.Position, Alignment);
        if (DataOffset > file.Length && tensorCount > 0)
            throw r.Error(r.Position, $"truncated: the data section would start at {DataOffset} but the file has {file.Length} bytes");
        long dataLength = Math.Max(0, file.Length - DataOffset);

        foreach (var t in infos)
        {
            if (t.Offset > dataLength || t.Bytes > dataLength - t.Offset)
                throw r.Error(t.At, $"tensor '{t.Name}' data [{t.Offset}, {t.Offset + (decimal)t.Bytes}) of the data section lies past its end ({dataLength} bytes; the file is truncated or the offset is wrong)");
        }
        // Tensors may not share bytes: sort by offset and compare neighbours.
        var sorted = infos.OrderBy(t => t.Offset).ToList();
        for (int i = 1; i < sorted.Count; i++)
            if (sorted[i - 1].Offset + sorted[i - 1].Bytes > sorted[i].Offset)
                throw r.Error(sorted[i].At, $"tensor '{sorted[i].Name}' at data offset {sorted[i].Offset} overlaps '{sorted[i - 1].Name}' ({sorted[i - 1].Offset} + {sorted[i - 1].Bytes} bytes)");

        foreach (var t in infos)
        {
            byte* data = file.Pointer + DataOffset + t.Offset;
            var info = new GgufTensorInfo(t.Name, t.Type, t.Dims, t.Elements, t.Bytes, t.Offset, DataOffset + t.Offset, data);
            tensors.Add(info);
            byName[t.Name] = info;
            if (ToDType(t.Type) is DType dt)
                stored[t.Name] = new StoredTensor(t.Name, dt, info.Shape, data);
            else if (Llava.Tensors.Quantization.GgmlQuant.IsSupported(t.Type))
                stored[t.Name] = new StoredTensor(t.Name, t.Type, info.Shape, data);
        }
    }

    public static long AlignUp(long offset, long alignment) => checked(offset + (alignment - offset % alignment) % alignment);

    GgufValue ReadValue(ref Reader r, GgufValueType type, int depth, long typeAt)
    {
        switch (type)
        {
            case GgufValueType.UInt8: return GgufValue.UInt8(r.U8());
            case GgufValueType.Int8: return GgufValue.Int8((sbyte)r.U8());
            case GgufValueType.UInt16: return GgufValue.UInt16(r.U16());
            case GgufValueType.Int16: return GgufValue.Int16((short)r.U16());
            case GgufValueType.UInt32: return GgufValue.UInt32(r.U32());
            case GgufValueType.Int32: return GgufValue.Int32((int)r.U32());
            case GgufValueType.Float32: return GgufValue.Float32(BitConverter.Int32BitsToSingle((int)r.U32()));
            case GgufValueType.Bool: return GgufValue.Bool(r.Bool());
            case GgufValueType.String: return GgufValue.String(r.String("string value"));
            case GgufValueType.UInt64: return GgufValue.UInt64(r.U64());
            case GgufValueType.Int64: return GgufValue.Int64((long)r.U64());
            case GgufValueType.Float64: return GgufValue.Float64(BitConverter.Int64BitsToDouble((long)r.U64()));
            case GgufValueType.Array: return GgufValue.Array(ReadArray(ref r, depth + 1));
            default: throw r.Error(typeAt, $"unknown metadata value type {(uint)type}");
        }
    }

    GgufArray ReadArray(ref Reader r, int depth)
    {
        long at = r.Position;
        if (depth > MaxArrayDepth) throw r.Error(at, $"arrays nested deeper than {MaxArrayDepth}");
        var elementType = r.ValueType();
        long countAt = r.Position;
        ulong count = r.U64();
        // The smallest encoding of one element: its fixed size, 8 bytes for a string (length), 12 for an array (type + count).
        long minSize = elementType switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
            GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 or GgufValueType.String => 8,
            _ => 12,
        };
        if (count > (ulong)MaxArrayElements || (long)count * minSize > r.Remaining)
            throw r.Error(countAt, $"array of {count} {elementType} elements does not fit in the {r.Remaining} bytes left in the file");
        int n = (int)count;
        switch (elementType)
        {
            case GgufValueType.UInt8: return new GgufArray(elementType, r.Bytes(n).ToArray());
            case GgufValueType.Int8: return new GgufArray(elementType, Fill<sbyte>(n, ref r, static (ref Reader q) => (sbyte)q.U8()));
            case GgufValueType.UInt16: return new GgufArray(elementType, Fill<ushort>(n, ref r, static (ref Reader q) => q.U16()));
            case GgufValueType.Int16: return new GgufArray(elementType, Fill<short>(n, ref r, static (ref Reader q) => (short)q.U16()));
            case GgufValueType.UInt32: return new GgufArray(elementType, Fill<uint>(n, ref r, static (ref Reader q) => q.U32()));
            case GgufValueType.Int32: return new GgufArray(elementType, Fill<int>(n, ref r, static (ref Reader q) => (int)q.U32()));
            case GgufValueType.Float32: return new GgufArray(elementType, Fill<float>(n, ref r, static (ref Reader q) => BitConverter.Int32BitsToSingle((int)q.U32())));
            case GgufValueType.Bool: return new GgufArray(elementType, Fill<bool>(n, ref r, static (ref Reader q) => q.Bool()));
            case GgufValueType.String: return new GgufArray(elementType, Fill<string>(n, ref r, static (ref Reader q) => q.String("array string")));
            case GgufValueType.UInt64: return new GgufArray(elementType, Fill<ulong>(n, ref r, static (ref Reader q) => q.U64()));
            case GgufValueType.Int64: return new GgufArray(elementType, Fill<long>(n, ref r, static (ref Reader q) => (long)q.U64()));
            case GgufValueType.Float64: return new GgufArray(elementType, Fill<double>(n, ref r, static (ref Reader q) => BitConverter.Int64BitsToDouble((long)q.U64())));
            case GgufValueType.Array:
                var items = new GgufArray[n];
                for (int i = 0; i < n; i++) items[i] = ReadArray(ref r, depth + 1);
                return new GgufArray(elementType, items);
            default: throw r.Error(at, $"unknown array element type {(uint)elementType}");
        }
    }

    delegate T ReadOne<T>(ref Reader r);

    static T[] Fill<T>(int n, ref Reader r, ReadOne<T> read)
    {
        var a = new T[n];
        for (int i = 0; i < n; i++) a[i] = read(ref r);
        return a;
    }

    public void Dispose() => file.Dispose();

    /// <summary>A bounds-checked little-endian cursor over the map; every failure names file and offset.</summary>
    struct Reader(MappedFile file)
    {
        static readonly UTF8Encoding StrictUtf8 = new(false, true);
        long pos;

        public readonly long Position => pos;
        public readonly long Remaining => file.Length - pos;

        public readonly ModelFormatException Error(long at, string what) =>
            new(at >= 0 ? $"{file.Path}: offset {at}: {what}" : $"{file.Path}: {what}");

        ReadOnlySpan<byte> Take(long n, string what)
        {
            if (n < 0 || n > Remaining)
                throw Error(pos, $"truncated: {what} needs {n} bytes but only {Remaining} remain (file is {file.Length} bytes)");
            var s = new ReadOnlySpan<byte>(file.Pointer + pos, (int)n);
            pos += n;
            return s;
        }

        public ReadOnlySpan<byte> Bytes(int n) => Take(n, $"{n} bytes");
        public byte U8() => Take(1, "a uint8")[0];
        public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, "a uint16"));
        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, "a uint32"));
        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, "a uint64"));

        public bool Bool()
        {
            long at = pos;
            byte b = U8();
            if (b > 1) throw Error(at, $"bool value {b} (must be 0 or 1)");
            return b == 1;
        }

        public GgufValueType ValueType()
        {
            long at = pos;
            uint t = U32();
            if (t > (uint)GgufValueType.Float64) throw Error(at, $"unknown metadata value type {t}");
            return (GgufValueType)t;
        }

        public string String(string what)
        {
            long at = pos;
            ulong len = U64();
            if (len > (ulong)MaxStringBytes || (long)len > Remaining)
                throw Error(at, $"{what} length {len} runs past the end of the file ({Remaining} bytes remain)");
            var bytes = Take((long)len, what);
            try { return StrictUtf8.GetString(bytes); }
            catch (DecoderFallbackException) { throw Error(at, $"{what} is not valid UTF-8"); }
        }
    }
}
