using System.Buffers.Binary;
using System.Text;

namespace Llava.Text;

/// <summary>Minimal protobuf wire-format reader (just what a SentencePiece ModelProto needs).</summary>
internal ref struct ProtoReader
{
    readonly ReadOnlySpan<byte> data;
    int pos;

    public ProtoReader(ReadOnlySpan<byte> data) { this.data = data; pos = 0; }

    public readonly bool End => pos >= data.Length;

    /// <summary>Reads the next field key; returns false at the end of the buffer.</summary>
    public bool TryReadTag(out int field, out int wireType)
    {
        if (End) { field = 0; wireType = 0; return false; }
        ulong key = ReadVarint();
        field = (int)(key >> 3);
        wireType = (int)(key & 7);
        if (field <= 0) throw new InvalidDataException("Invalid protobuf field number.");
        return true;
    }

    public ulong ReadVarint()
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (pos >= data.Length) throw new InvalidDataException("Truncated protobuf varint.");
            byte b = data[pos++];
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return result;
        }
        throw new InvalidDataException("Protobuf varint too long.");
    }

    public float ReadFloat()
    {
        if (pos + 4 > data.Length) throw new InvalidDataException("Truncated protobuf fixed32.");
        float v = BinaryPrimitives.ReadSingleLittleEndian(data.Slice(pos, 4));
        pos += 4;
        return v;
    }

    public ReadOnlySpan<byte> ReadBytes()
    {
        ulong len = ReadVarint();
        if (len > (ulong)(data.Length - pos)) throw new InvalidDataException("Truncated protobuf length-delimited field.");
        var s = data.Slice(pos, (int)len);
        pos += (int)len;
        return s;
    }

    public string ReadString() => Encoding.UTF8.GetString(ReadBytes());

    /// <summary>Skips a field of the given wire type.</summary>
    public void Skip(int wireType)
    {
        switch (wireType)
        {
            case 0: ReadVarint(); break;
            case 1: Advance(8); break;
            case 2: ReadBytes(); break;
            case 5: Advance(4); break;
            default: throw new InvalidDataException($"Unsupported protobuf wire type {wireType}.");
        }
    }

    void Advance(int n)
    {
        if (pos + n > data.Length) throw new InvalidDataException("Truncated protobuf field.");
        pos += n;
    }
}
