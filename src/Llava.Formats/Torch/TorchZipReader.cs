using System.Buffers.Binary;
using System.Text;

namespace Llava.Formats.Torch;

/// <summary>
/// Reads the directory of a zip archive straight from a memory map, as torch.save writes it (torch >= 1.6): every
/// entry stored uncompressed, usually with ZIP64 end records. Only the layout is parsed; entry bytes stay in the map.
/// Every offset and length is checked against the file before use.
/// </summary>
internal static unsafe class TorchZipReader
{
    const uint LocalHeaderSig = 0x04034b50;
    const uint CentralHeaderSig = 0x02014b50;
    const uint EndSig = 0x06054b50;
    const uint Zip64EndSig = 0x06064b50;
    const uint Zip64LocatorSig = 0x07064b50;
    const int EndSize = 22;
    const int Zip64LocatorSize = 20;
    const int Zip64EndMinSize = 56;
    const int CentralHeaderSize = 46;
    const int LocalHeaderSize = 30;

    /// <summary>The archive's entries by name, in central-directory order.</summary>
    public static List<ZipEntry> ReadEntries(MappedFile file)
    {
        var r = new Reader(file);
        long eocd = FindEndRecord(r);

        // Classic end record: 16/32-bit fields, 0xFFFF/0xFFFFFFFF when the real value lives in the ZIP64 record.
        long disk = r.U16(eocd + 4), cdDisk = r.U16(eocd + 6);
        long count = r.U16(eocd + 10);
        long cdSize = r.U32(eocd + 12), cdOffset = r.U32(eocd + 16);
        long cdLimit = eocd;

        // torch (miniz) always writes a ZIP64 locator right before the end record; large archives need it.
        bool hasLocator = eocd >= Zip64LocatorSize && r.U32(eocd - Zip64LocatorSize) == Zip64LocatorSig;
        if (hasLocator)
        {
            long loc = eocd - Zip64LocatorSize;
            long rec = r.I64(loc + 8, "ZIP64 end-of-central-directory offset");
            if (rec < 0 || rec > loc - Zip64EndMinSize)
                throw r.Fail($"corrupt zip archive: ZIP64 end-of-central-directory offset {rec} is outside the file");
            if (r.U32(rec) != Zip64EndSig)
                throw r.Fail("corrupt zip archive: the ZIP64 end-of-central-directory record is missing");
            disk = r.U32(rec + 16);
            cdDisk = r.U32(rec + 20);
            count = r.I64(rec + 32, "ZIP64 entry count");
            cdSize = r.I64(rec + 40, "ZIP64 central directory size");
            cdOffset = r.I64(rec + 48, "ZIP64 central directory offset");
            cdLimit = rec;
        }
        else if (count == 0xFFFF || cdSize == 0xFFFFFFFF || cdOffset == 0xFFFFFFFF)
            throw r.Fail("corrupt zip archive: needs ZIP64 records but the ZIP64 locator is missing");

        if (disk != 0 || cdDisk != 0) throw r.Fail("multi-disk zip archives are not supported");
        if (cdOffset < 0 || cdSize < 0 || cdOffset > cdLimit || cdSize > cdLimit - cdOffset)
            throw r.Fail($"corrupt zip archive: central directory [{cdOffset}, +{cdSize}) lies outside the file");
        if (count < 0 || count > cdSize / CentralHeaderSize)
            throw r.Fail($"corrupt zip archive: {count} entries cannot fit in a {cdSize}-byte central directory");

        var entries = new List<ZipEntry>((int)count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        long p = cdOffset, cdEnd = cdOffset + cdSize;
        for (long i = 0; i < count; i++)
        {
            var e = ReadCentralEntry(r, ref p, cdEnd, cdOffset);
            if (!seen.Add(e.Name)) throw r.Fail($"corrupt zip archive: entry '{e.Name}' appears twice");
            entries.Add(e);
        }
        return entries;
    }

    /// <summary>Searches backwards for the end-of-central-directory record (it may be followed by a comment).</summary>
    static long FindEndRecord(Reader r)
    {
        long last = r.Length - EndSize;
        long first = Math.Max(0, last - 0xFFFF);
        for (long p = last; p >= first; p--)
        {
            if (r.U32(p) != EndSig) continue;
            if (p + EndSize + r.U16(p + 20) <= r.Length) return p;
        }
        throw r.Fail("not a valid zip archive: no end-of-central-directory record found (the file is truncated or corrupt)");
    }

    static ZipEntry ReadCentralEntry(Reader r, ref long p, long cdEnd, long dataLimit)
    {
        if (p > cdEnd - CentralHeaderSize || r.U32(p) != CentralHeaderSig)
            throw r.Fail($"corrupt zip archive: bad central directory entry at byte {p}");
        int flags = r.U16(p + 8), method = r.U16(p + 10);
        uint crc = r.U32(p + 16);
        long compressed = r.U32(p + 20), size = r.U32(p + 24);
        int nameLen = r.U16(p + 28), extraLen = r.U16(p + 30), commentLen = r.U16(p + 32);
        long localOffset = r.U32(p + 42);
        long next = p + CentralHeaderSize + nameLen + extraLen + commentLen;
        if (next > cdEnd) throw r.Fail($"corrupt zip archive: central directory entry at byte {p} runs past the directory");
        string name = Encoding.UTF8.GetString(r.Span(p + CentralHeaderSize, nameLen));

        // ZIP64 extended information: 64-bit values for exactly those fields that hold 0xFFFFFFFF, in this order.
        long x = p + CentralHeaderSize + nameLen, xEnd = x + extraLen;
        while (x + 4 <= xEnd)
        {
            int id = r.U16(x), len = r.U16(x + 2);
            long body = x + 4;
            if (body + len > xEnd) throw r.Fail($"corrupt zip archive: extra field of '{name}' runs past its entry");
            if (id == 0x0001)
            {
                long q = body, qEnd = body + len;
                if (size == 0xFFFFFFFF) size = Take64(r, ref q, qEnd, name);
                if (compressed == 0xFFFFFFFF) compressed = Take64(r, ref q, qEnd, name);
                if (localOffset == 0xFFFFFFFF) localOffset = Take64(r, ref q, qEnd, name);
            }
            x = body + len;
        }

        if ((flags & 1) != 0) throw r.Fail($"zip entry '{name}' is encrypted");
        if (method != 0)
            throw r.Fail($"zip entry '{name}' is compressed (method {method}); PyTorch checkpoints store entries uncompressed, so this file was re-packed and cannot be memory-mapped");
        if (compressed != size) throw r.Fail($"corrupt zip archive: stored entry '{name}' has compressed size {compressed} but size {size}");

        // The local header repeats the name and may carry a different extra field (torch pads it to align the data).
        if (localOffset < 0 || localOffset > dataLimit - LocalHeaderSize || r.U32(localOffset) != LocalHeaderSig)
            throw r.Fail($"corrupt zip archive: local header of '{name}' at byte {localOffset} is missing");
        long dataOffset = localOffset + LocalHeaderSize + r.U16(localOffset + 26) + r.U16(localOffset + 28);
        if (dataOffset > dataLimit || size > dataLimit - dataOffset)
            throw r.Fail($"corrupt zip archive: data of '{name}' ([{dataOffset}, +{size})) runs past the entry area (ends at byte {dataLimit})");

        p = next;
        return new ZipEntry(name, dataOffset, size, crc);
    }

    static long Take64(Reader r, ref long q, long qEnd, string name)
    {
        if (q + 8 > qEnd) throw r.Fail($"corrupt zip archive: ZIP64 extra field of '{name}' is too short");
        long v = r.I64(q, $"ZIP64 value of '{name}'");
        q += 8;
        return v;
    }

    /// <summary>Bounds-checked little-endian reads from the map.</summary>
    readonly struct Reader(MappedFile file)
    {
        public long Length => file.Length;

        public Exception Fail(string message) => new ModelFormatException($"{file.Path}: {message}");

        public ReadOnlySpan<byte> Span(long offset, int count)
        {
            if (offset < 0 || count < 0 || offset > file.Length - count)
                throw Fail($"corrupt zip archive: reads bytes [{offset}, +{count}) beyond the end of the file ({file.Length} bytes)");
            return new ReadOnlySpan<byte>(file.Pointer + offset, count);
        }

        public ushort U16(long o) => BinaryPrimitives.ReadUInt16LittleEndian(Span(o, 2));
        public uint U32(long o) => BinaryPrimitives.ReadUInt32LittleEndian(Span(o, 4));

        /// <summary>A 64-bit field that must be a non-negative file offset or size.</summary>
        public long I64(long o, string what)
        {
            ulong v = BinaryPrimitives.ReadUInt64LittleEndian(Span(o, 8));
            if (v > long.MaxValue) throw Fail($"corrupt zip archive: {what} {v} is out of range");
            return (long)v;
        }
    }
}
