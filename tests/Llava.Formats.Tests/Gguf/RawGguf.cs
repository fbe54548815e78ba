using System.Buffers.Binary;
using System.Text;

namespace Llava.Tests.Gguf;

/// <summary>Hand-assembles GGUF bytes field by field, so tests can write exactly the lie they want the reader to catch.</summary>
public sealed class RawGguf
{
    readonly MemoryStream s = new();

    public long Position => s.Position;
    public RawGguf U8(byte v) { s.WriteByte(v); return this; }
    public RawGguf U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); s.Write(b); return this; }
    public RawGguf U64(ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); s.Write(b); return this; }
    public RawGguf Bytes(byte[] b) { s.Write(b); return this; }
    public RawGguf Str(string v) { var b = Encoding.UTF8.GetBytes(v); U64((ulong)b.Length); s.Write(b); return this; }
    public RawGguf Header(uint tensors, uint kvs, uint version = 3) => U32(0x46554747).U32(version).U64(tensors).U64(kvs);
    /// <summary>Key + type uint32 + value.</summary>
    public RawGguf KvU32(string key, uint v) => Str(key).U32(4).U32(v);
    public RawGguf TensorInfo(string name, uint type, ulong[] ne, ulong offset)
    {
        Str(name).U32((uint)ne.Length);
        foreach (var d in ne) U64(d);
        return U32(type).U64(offset);
    }
    public RawGguf PadTo(int alignment) { while (s.Position % alignment != 0) s.WriteByte(0); return this; }
    public byte[] ToArray() => s.ToArray();
}
