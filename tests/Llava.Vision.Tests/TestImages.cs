using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Llava.Vision.Tests;

/// <summary>Hand-written encoders for test inputs Skia cannot encode (or cannot encode in the variant needed).</summary>
internal static class TestImages
{
    public static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>A PNG with raw scanlines (filter 0). colorType: 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA.</summary>
    public static byte[] Png(int width, int height, int bitDepth, int colorType, byte[] rawRows,
        byte[]? palette = null, byte[]? trns = null)
    {
        var ms = new MemoryStream();
        ms.Write(PngSignature);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(0), width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = (byte)bitDepth;
        ihdr[9] = (byte)colorType;
        WriteChunk(ms, "IHDR", ihdr);
        if (palette != null) WriteChunk(ms, "PLTE", palette);
        if (trns != null) WriteChunk(ms, "tRNS", trns);
        int channels = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => throw new ArgumentException() };
        int rowBytes = (width * channels * bitDepth + 7) / 8;
        Assert.Equal(rowBytes * height, rawRows.Length);
        var filtered = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            filtered.WriteByte(0);
            filtered.Write(rawRows, y * rowBytes, rowBytes);
        }
        WriteChunk(ms, "IDAT", Zlib(filtered.ToArray()));
        WriteChunk(ms, "IEND", []);
        return ms.ToArray();
    }

    /// <summary>Only the signature, an IHDR claiming the given size and a tiny IDAT: a "decompression bomb" header.</summary>
    public static byte[] PngHeaderOnly(int width, int height)
    {
        var ms = new MemoryStream();
        ms.Write(PngSignature);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(0), width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8;
        ihdr[9] = 2;
        WriteChunk(ms, "IHDR", ihdr);
        WriteChunk(ms, "IDAT", Zlib(new byte[64]));
        WriteChunk(ms, "IEND", []);
        return ms.ToArray();
    }

    public static void WriteChunk(Stream s, string type, byte[] data)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        var typeAndData = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(typeAndData);
        BinaryPrimitives.WriteUInt32BigEndian(len, Crc32(typeAndData));
        s.Write(len);
    }

    static byte[] Zlib(byte[] data)
    {
        var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Optimal, leaveOpen: true)) z.Write(data);
        return ms.ToArray();
    }

    static uint Crc32(byte[] data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }

    /// <summary>Uncompressed 24-bit bottom-up BMP.</summary>
    public static byte[] Bmp24(RgbImage img)
    {
        int rowBytes = (img.Width * 3 + 3) & ~3;
        int dataSize = rowBytes * img.Height;
        var b = new byte[54 + dataSize];
        b[0] = (byte)'B';
        b[1] = (byte)'M';
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(2), b.Length);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(10), 54);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(18), img.Width);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(22), img.Height);
        BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(26), 1);
        BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(28), 24);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(34), dataSize);
        for (int y = 0; y < img.Height; y++)
        {
            int row = 54 + (img.Height - 1 - y) * rowBytes;
            for (int x = 0; x < img.Width; x++)
            {
                var (r, g, bl) = img.GetPixel(x, y);
                b[row + x * 3] = bl;
                b[row + x * 3 + 1] = g;
                b[row + x * 3 + 2] = r;
            }
        }
        return b;
    }

    /// <summary>
    /// A GIF89a with a 128-colour global palette and "uncompressed" LZW: 8-bit codes, all literals, with a clear
    /// code every 126 pixels so the code width never grows. A second frame is appended to check only the first is used.
    /// </summary>
    public static byte[] Gif(int width, int height, byte[] palette128Rgb, byte[] indices, byte[]? secondFrameIndices = null)
    {
        Assert.Equal(128 * 3, palette128Rgb.Length);
        var ms = new MemoryStream();
        ms.Write(Encoding.ASCII.GetBytes("GIF89a"));
        Span<byte> u16 = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(u16, (ushort)width); ms.Write(u16);
        BinaryPrimitives.WriteUInt16LittleEndian(u16, (ushort)height); ms.Write(u16);
        ms.WriteByte(0x80 | 0x70 | 6); // global table, 8-bit colour resolution, 2^(6+1) = 128 entries
        ms.WriteByte(0);
        ms.WriteByte(0);
        ms.Write(palette128Rgb);
        WriteFrame(ms, width, height, indices);
        if (secondFrameIndices != null) WriteFrame(ms, width, height, secondFrameIndices);
        ms.WriteByte(0x3B);
        return ms.ToArray();
    }

    static void WriteFrame(MemoryStream ms, int width, int height, byte[] indices)
    {
        // Graphic control extension (no transparency, short delay) so multi-frame files are animations.
        ms.Write([0x21, 0xF9, 4, 0x04, 10, 0, 0, 0]);
        ms.WriteByte(0x2C);
        Span<byte> u16 = stackalloc byte[2];
        ms.Write([0, 0, 0, 0]);
        BinaryPrimitives.WriteUInt16LittleEndian(u16, (ushort)width); ms.Write(u16);
        BinaryPrimitives.WriteUInt16LittleEndian(u16, (ushort)height); ms.Write(u16);
        ms.WriteByte(0);
        ms.WriteByte(7); // LZW minimum code size: codes are 8 bits, clear = 128, end = 129
        var codes = new List<byte> { 128 };
        int sinceClear = 0;
        foreach (var idx in indices)
        {
            Assert.True(idx < 128);
            if (sinceClear == 126) { codes.Add(128); sinceClear = 0; }
            codes.Add(idx);
            sinceClear++;
        }
        codes.Add(129);
        for (int i = 0; i < codes.Count; i += 255)
        {
            int n = Math.Min(255, codes.Count - i);
            ms.WriteByte((byte)n);
            ms.Write(codes.GetRange(i, n).ToArray());
        }
        ms.WriteByte(0);
    }

    /// <summary>Inserts an EXIF APP1 segment holding only an Orientation tag right after the JPEG SOI marker.</summary>
    public static byte[] WithExifOrientation(byte[] jpeg, int orientation)
    {
        Assert.True(jpeg[0] == 0xFF && jpeg[1] == 0xD8);
        var tiff = new byte[]
        {
            (byte)'M', (byte)'M', 0, 42, 0, 0, 0, 8, // big-endian TIFF header, IFD0 at offset 8
            0, 1,                                     // one entry
            0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (byte)orientation, 0, 0, // Orientation, SHORT, count 1
            0, 0, 0, 0,                               // no next IFD
        };
        var payload = Encoding.ASCII.GetBytes("Exif\0\0").Concat(tiff).ToArray();
        var seg = new byte[4 + payload.Length];
        seg[0] = 0xFF;
        seg[1] = 0xE1;
        BinaryPrimitives.WriteUInt16BigEndian(seg.AsSpan(2), (ushort)(payload.Length + 2));
        payload.CopyTo(seg, 4);
        return [.. jpeg.AsSpan(0, 2), .. seg, .. jpeg.AsSpan(2)];
    }
}
