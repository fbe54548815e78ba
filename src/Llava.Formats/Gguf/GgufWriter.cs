using System.Buffers.Binary;
using System.Text;
using Llava.Tensors;

namespace Llava.Formats.Gguf;

/// <summary>
/// Writes a GGUF v3 file: header, metadata in insertion order, tensor infos, padding to the alignment
/// (<c>general.alignment</c> when set, else 32), then each tensor's data padded with zeros to the alignment,
/// as ggml/docs/gguf.md specifies. Tensor data is streamed (a callback per tensor), so exports of large models
/// never hold the weights in memory.
/// </summary>
public sealed class GgufWriter
{
    sealed record PendingTensor(string Name, GgmlType Type, long[] Dims, long ByteSize, Action<Stream> Write);

    readonly List<(string Key, GgufValue Value)> metadata = new();
    readonly HashSet<string> keys = new(StringComparer.Ordinal);
    readonly List<PendingTensor> tensors = new();
    readonly HashSet<string> tensorNames = new(StringComparer.Ordinal);

    public int MetadataCount => metadata.Count;
    public int TensorCount => tensors.Count;

    public GgufWriter Add(string key, GgufValue value)
    {
        if (string.IsNullOrEmpty(key)) throw new ArgumentException("empty metadata key");
        if (!keys.Add(key)) throw new ArgumentException($"metadata key '{key}' added twice");
        if (key == "general.alignment")
        {
            if (value.Type != GgufValueType.UInt32 || (uint)value.Raw is var a && (a == 0 || (a & (a - 1)) != 0 || a > GgufFile.MaxAlignment))
                throw new ArgumentException("general.alignment must be a uint32 power of two");
        }
        metadata.Add((key, value));
        return this;
    }

    public GgufWriter AddString(string key, string v) => Add(key, GgufValue.String(v));
    public GgufWriter AddUInt32(string key, uint v) => Add(key, GgufValue.UInt32(v));
    public GgufWriter AddInt32(string key, int v) => Add(key, GgufValue.Int32(v));
    public GgufWriter AddUInt64(string key, ulong v) => Add(key, GgufValue.UInt64(v));
    public GgufWriter AddFloat32(string key, float v) => Add(key, GgufValue.Float32(v));
    public GgufWriter AddBool(string key, bool v) => Add(key, GgufValue.Bool(v));
    public GgufWriter AddStringArray(string key, IEnumerable<string> v) => Add(key, GgufValue.StringArray(v));
    public GgufWriter AddFloat32Array(string key, IEnumerable<float> v) => Add(key, GgufValue.Float32Array(v));
    public GgufWriter AddInt32Array(string key, IEnumerable<int> v) => Add(key, GgufValue.Int32Array(v));

    /// <summary>The alignment the file will use: general.alignment when added, else 32.</summary>
    public uint Alignment => metadata.FirstOrDefault(m => m.Key == "general.alignment").Value is { } v ? (uint)v.Raw : GgufFile.DefaultAlignment;

    /// <summary>Bytes of a tensor of <paramref name="type"/> with dims <paramref name="ne"/> (ggml order).</summary>
    public static long TensorBytes(GgmlType type, IReadOnlyList<long> ne)
    {
        if (ne.Count > GgufFile.MaxDimensions) throw new ArgumentException($"{ne.Count} dimensions (at most {GgufFile.MaxDimensions})");
        long elements = 1;
        foreach (var d in ne)
        {
            if (d < 0) throw new ArgumentException($"negative dimension {d}");
            elements = checked(elements * d);
        }
        long row = ne.Count > 0 ? ne[0] : 1;
        return checked(GgmlTypeInfo.RowBytes(type, row) * (row == 0 ? 0 : elements / row));
    }

    /// <summary>Adds a tensor with its bytes in memory. <paramref name="ne"/> is in ggml order (innermost first).</summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] ne, byte[] data)
    {
        long size = TensorBytes(type, ne);
        if (data.Length != size) throw new ArgumentException($"tensor '{name}': {data.Length} bytes given, {type} ne=[{string.Join(", ", ne)}] needs {size}");
        return AddTensor(name, type, ne, s => s.Write(data));
    }

    /// <summary>Adds a tensor whose bytes <paramref name="write"/> streams when the file is written; it must write exactly the tensor's size.</summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] ne, Action<Stream> write)
    {
        if (Encoding.UTF8.GetByteCount(name) is 0 or > 64) throw new ArgumentException($"tensor name '{name}' must be 1..64 bytes");
        if (!tensorNames.Add(name)) throw new ArgumentException($"tensor '{name}' added twice");
        tensors.Add(new PendingTensor(name, type, (long[])ne.Clone(), TensorBytes(type, ne), write));
        return this;
    }

    public void Write(string path)
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Write(fs);
    }

    public void Write(Stream output)
    {
        uint alignment = Alignment;
        var w = new BinaryWriter(output, Encoding.UTF8, leaveOpen: true);
        if (!output.CanSeek) throw new ArgumentException("the output stream must be seekable (tensor sizes are checked by position)");
        long written = 0;
        void Bytes(ReadOnlySpan<byte> b) { w.Write(b); written += b.Length; }
        void U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); Bytes(b); }
        void U64(ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); Bytes(b); }
        void Str(string s) { var b = Encoding.UTF8.GetBytes(s); U64((ulong)b.Length); Bytes(b); }
        void Pad() { long pad = GgufFile.AlignUp(written, alignment) - written; if (pad > 0) Bytes(new byte[pad]); }

        void Value(GgufValue v)
        {
            switch (v.Raw)
            {
                case byte x: Bytes([x]); break;
                case sbyte x: Bytes([(byte)x]); break;
                case ushort x: { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, x); Bytes(b); break; }
                case short x: { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteInt16LittleEndian(b, x); Bytes(b); break; }
                case uint x: U32(x); break;
                case int x: U32((uint)x); break;
                case float x: U32(BitConverter.SingleToUInt32Bits(x)); break;
                case bool x: Bytes([(byte)(x ? 1 : 0)]); break;
                case string x: Str(x); break;
                case ulong x: U64(x); break;
                case long x: U64((ulong)x); break;
                case double x: U64(BitConverter.DoubleToUInt64Bits(x)); break;
                case GgufArray a: Array(a); break;
                default: throw new InvalidOperationException($"cannot write {v.Raw.GetType()}");
            }
        }

        void Array(GgufArray a)
        {
            U32((uint)a.ElementType);
            U64((ulong)a.Count);
            switch (a.Items)
            {
                case byte[] b: Bytes(b); break;
                case GgufArray[] nested: foreach (var n in nested) Array(n); break;
                default:
                    foreach (var item in a.Items) Value(Box(a.ElementType, item!));
                    break;
            }
        }

        U32(GgufFile.Magic);
        U32(3);
        U64((ulong)tensors.Count);
        U64((ulong)metadata.Count);
        foreach (var (key, value) in metadata)
        {
            Str(key);
            U32((uint)value.Type);
            Value(value);
        }
        long offset = 0;
        foreach (var t in tensors)
        {
            Str(t.Name);
            U32((uint)t.Dims.Length);
            foreach (var d in t.Dims) U64((ulong)d);
            U32((uint)t.Type);
            U64((ulong)offset);
            offset = GgufFile.AlignUp(offset + t.ByteSize, alignment);
        }
        Pad();
        w.Flush();
        foreach (var t in tensors)
        {
            long before = output.Position;
            t.Write(output);
            long got = output.Position - before;
            if (got != t.ByteSize) throw new InvalidOperationException($"tensor '{t.Name}': the writer produced {got} bytes, expected {t.ByteSize}");
            written += got;
            Pad();
            w.Flush();
        }
    }

    static GgufValue Box(GgufValueType t, object item) => t switch
    {
        GgufValueType.UInt8 => GgufValue.UInt8((byte)item),
        GgufValueType.Int8 => GgufValue.Int8((sbyte)item),
        GgufValueType.UInt16 => GgufValue.UInt16((ushort)item),
        GgufValueType.Int16 => GgufValue.Int16((short)item),
        GgufValueType.UInt32 => GgufValue.UInt32((uint)item),
        GgufValueType.Int32 => GgufValue.Int32((int)item),
        GgufValueType.Float32 => GgufValue.Float32((float)item),
        GgufValueType.Bool => GgufValue.Bool((bool)item),
        GgufValueType.String => GgufValue.String((string)item),
        GgufValueType.UInt64 => GgufValue.UInt64((ulong)item),
        GgufValueType.Int64 => GgufValue.Int64((long)item),
        GgufValueType.Float64 => GgufValue.Float64((double)item),
        GgufValueType.Array => GgufValue.Array((GgufArray)item),
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };
}
