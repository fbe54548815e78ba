using System.Buffers.Binary;
using System.Text;

namespace Llava.Formats.Tests.Torch;

/// <summary>
/// Writes small zip archives laid out like torch.save's (stored entries, data aligned to 64 bytes with a padding extra
/// field, ZIP64 end records), with knobs to produce the variants and corruptions the reader must handle.
/// </summary>
internal sealed class TestZipWriter
{
    readonly List<(string Name, byte[] Data, ushort Method)> entries = new();

    /// <summary>Put 0xFFFFFFFF in every 32-bit size/offset field and the real values in ZIP64 extra fields and records.</summary>
    public bool ForceZip64Fields { get; init; }
    /// <summary>Write the ZIP64 end record and locator (torch always does).</summary>
    public bool WriteZip64End { get; init; } = true;

    public TestZipWriter Add(string name, byte[] data, ushort method = 0)
    {
        entries.Add((name, data, method));
        return this;
    }

    /// <summary>A torch-style checkpoint: "&lt;top&gt;/data.pkl", "&lt;top&gt;/byteorder", "&lt;top&gt;/data/&lt;key&gt;", "&lt;top&gt;/version".</summary>
    public static TestZipWriter Checkpoint(string top, byte[] pickle, IEnumerable<KeyValuePair<string, byte[]>> storages, string byteorder = "little", bool zip64Fields = false)
    {
        var w = new TestZipWriter { ForceZip64Fields = zip64Fields };
        w.Add(top + "/data.pkl", pickle);
        if (byteorder != null) w.Add(top + "/byteorder", Encoding.ASCII.GetBytes(byteorder));
        foreach (var (k, v) in storages) w.Add(top + "/data/" + k, v);
        w.Add(top + "/version", Encoding.ASCII.GetBytes("3\n"));
        return w;
    }

    public byte[] ToArray()
    {
        var o = new MemoryStream();
        var offsets = new List<long>();
        foreach (var (name, data, method) in entries)
        {
            offsets.Add(o.Position);
            var nameBytes = Encoding.UTF8.GetBytes(name);
            long dataStart = o.Position + 30 + nameBytes.Length + 4;
            int pad = (int)((64 - dataStart % 64) % 64);
            U32(o, 0x04034b50); U16(o, 45); U16(o, 0); U16(o, method); U16(o, 0); U16(o, 0);
            U32(o, Crc(data)); U32(o, (uint)data.Length); U32(o, (uint)data.Length);
            U16(o, (ushort)nameBytes.Length); U16(o, (ushort)(4 + pad));
            o.Write(nameBytes);
            U16(o, 0x4246); U16(o, (ushort)pad); o.Write(Enumerable.Repeat((byte)'Z', pad).ToArray());
            o.Write(data);
        }
        long cdOffset = o.Position;
        for (int i = 0; i < entries.Count; i++)
        {
            var (name, data, method) = entries[i];
            var nameBytes = Encoding.UTF8.GetBytes(name);
            U32(o, 0x02014b50); U16(o, 45); U16(o, 45); U16(o, 0); U16(o, method); U16(o, 0); U16(o, 0);
            U32(o, Crc(data));
            uint small(long v) => ForceZip64Fields ? 0xFFFFFFFF : (uint)v;
            U32(o, small(data.Length)); U32(o, small(data.Length));
            U16(o, (ushort)nameBytes.Length); U16(o, (ushort)(ForceZip64Fields ? 28 : 0)); U16(o, 0);
            U16(o, 0); U16(o, 0); U32(o, 0); U32(o, small(offsets[i]));
            o.Write(nameBytes);
            if (ForceZip64Fields)
            {
                U16(o, 1); U16(o, 24); U64(o, (ulong)data.Length); U64(o, (ulong)data.Length); U64(o, (ulong)offsets[i]);
            }
        }
        long cdSize = o.Position - cdOffset;
        if (WriteZip64End)
        {
            long rec = o.Position;
            U32(o, 0x06064b50); U64(o, 44); U16(o, 45); U16(o, 45); U32(o, 0); U32(o, 0);
            U64(o, (ulong)entries.Count); U64(o, (ulong)entries.Count); U64(o, (ulong)cdSize); U64(o, (ulong)cdOffset);
            U32(o, 0x07064b50); U32(o, 0); U64(o, (ulong)rec); U32(o, 1);
        }
        U32(o, 0x06054b50); U16(o, 0); U16(o, 0);
        ushort count = ForceZip64Fields ? (ushort)0xFFFF : (ushort)entries.Count;
        U16(o, count); U16(o, count);
        U32(o, ForceZip64Fields ? 0xFFFFFFFF : (uint)cdSize); U32(o, ForceZip64Fields ? 0xFFFFFFFF : (uint)cdOffset);
        U16(o, 0);
        return o.ToArray();
    }

    static void U16(Stream s, ushort v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, v); s.Write(b); }
    static void U32(Stream s, uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); s.Write(b); }
    static void U64(Stream s, ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); s.Write(b); }

    /// <summary>Zip CRC-32, bit by bit (speed is irrelevant for test archives).</summary>
    static uint Crc(byte[] data)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320 & (uint)-(int)(c & 1));
        }
        return ~c;
    }
}
