using System.Buffers.Binary;

namespace Llava.Vision;

/// <summary>
/// Reads the claimed width and height straight from a PNG, JPEG, GIF, BMP or WebP header, so an absurd size is
/// refused before any decoder runs (even when the rest of the file is missing, which would otherwise surface
/// as a vaguer "corrupt" error).
/// </summary>
public static class ImageHeader
{
    static ReadOnlySpan<byte> PngSignature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    public static bool TryReadSize(ReadOnlySpan<byte> d, out string format, out long width, out long height)
    {
        format = ""; width = height = 0;
        if (d.Length >= 24 && d[..8].SequenceEqual(PngSignature) && d.Slice(12, 4).SequenceEqual("IHDR"u8))
        {
            format = "PNG";
            width = BinaryPrimitives.ReadUInt32BigEndian(d.Slice(16));
            height = BinaryPrimitives.ReadUInt32BigEndian(d.Slice(20));
            return true;
        }
        if (d.Length >= 10 && (d[..6].SequenceEqual("GIF87a"u8) || d[..6].SequenceEqual("GIF89a"u8)))
        {
            format = "GIF";
            width = BinaryPrimitives.ReadUInt16LittleEndian(d.Slice(6));
            height = BinaryPrimitives.ReadUInt16LittleEndian(d.Slice(8));
            return true;
        }
        if (d.Length >= 26 && d[0] == 'B' && d[1] == 'M')
        {
            format = "BMP";
            width = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(d.Slice(18)));
            height = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(d.Slice(22)));
            return true;
        }
        if (d.Length >= 30 && d[..4].SequenceEqual("RIFF"u8) && d.Slice(8, 4).SequenceEqual("WEBP"u8))
        {
            format = "WEBP";
            var chunk = d.Slice(12, 4);
            if (chunk.SequenceEqual("VP8X"u8))
            {
                width = 1 + (d[24] | d[25] << 8 | d[26] << 16);
                height = 1 + (d[27] | d[28] << 8 | d[29] << 16);
                return true;
            }
            if (chunk.SequenceEqual("VP8L"u8) && d.Length >= 25)
            {
                uint bits = BinaryPrimitives.ReadUInt32LittleEndian(d.Slice(21));
                width = 1 + (bits & 0x3FFF);
                height = 1 + ((bits >> 14) & 0x3FFF);
                return true;
            }
            if (chunk.SequenceEqual("VP8 "u8))
            {
                width = BinaryPrimitives.ReadUInt16LittleEndian(d.Slice(26)) & 0x3FFF;
                height = BinaryPrimitives.ReadUInt16LittleEndian(d.Slice(28)) & 0x3FFF;
                return true;
            }
            return false;
        }
        if (d.Length >= 4 && d[0] == 0xFF && d[1] == 0xD8)
        {
            // Walk the JPEG markers to the first start-of-frame (SOF0..SOF15 except DHT, JPG, DAC).
            int i = 2;
            while (i + 9 < d.Length)
            {
                if (d[i] != 0xFF) return false;
                byte marker = d[i + 1];
                if (marker == 0xFF) { i++; continue; }
                if (marker is 0xD8 or 0x01 || marker is >= 0xD0 and <= 0xD7) { i += 2; continue; }
                int len = BinaryPrimitives.ReadUInt16BigEndian(d.Slice(i + 2));
                if (marker is >= 0xC0 and <= 0xCF && marker is not (0xC4 or 0xC8 or 0xCC))
                {
                    format = "JPEG";
                    height = BinaryPrimitives.ReadUInt16BigEndian(d.Slice(i + 5));
                    width = BinaryPrimitives.ReadUInt16BigEndian(d.Slice(i + 7));
                    return true;
                }
                if (len < 2) return false;
                i += 2 + len;
            }
        }
        return false;
    }
}
