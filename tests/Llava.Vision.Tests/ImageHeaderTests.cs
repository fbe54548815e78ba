using Llava.Vision;

namespace Llava.Vision.Tests;

/// <summary>Sizes read from headers alone, so absurd images are refused before any decoder allocates.</summary>
public sealed class ImageHeaderTests
{
    static byte[] Png(uint w, uint h)
    {
        var b = new byte[33];
        new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13 }.CopyTo(b, 0);
        "IHDR"u8.CopyTo(b.AsSpan(12));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16), w);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(20), h);
        return b;
    }

    static byte[] Jpeg(ushort w, ushort h) =>
        [0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC0, 0, 11, 8, (byte)(h >> 8), (byte)h, (byte)(w >> 8), (byte)w, 3, 0, 0, 0, 0, 0];

    static byte[] Gif(ushort w, ushort h) => [.. "GIF89a"u8, (byte)w, (byte)(w >> 8), (byte)h, (byte)(h >> 8), 0, 0, 0];

    static byte[] Bmp(int w, int h)
    {
        var b = new byte[54];
        b[0] = (byte)'B'; b[1] = (byte)'M';
        BitConverter.GetBytes(w).CopyTo(b, 18);
        BitConverter.GetBytes(h).CopyTo(b, 22);
        return b;
    }

    public static IEnumerable<object[]> Headers() =>
    [
        ["PNG", Png(100000, 100000), 100000L, 100000L],
        ["JPEG", Jpeg(65000, 61000), 65000L, 61000L],
        ["GIF", Gif(40000, 30000), 40000L, 30000L],
        ["BMP", Bmp(30000, -30000), 30000L, 30000L],
    ];

    [Theory]
    [MemberData(nameof(Headers))]
    public void TryReadSize_ReadsClaimedSize(string format, byte[] data, long w, long h)
    {
        Assert.True(ImageHeader.TryReadSize(data, out var f, out long width, out long height));
        Assert.Equal(format, f);
        Assert.Equal(w, width);
        Assert.Equal(h, height);
    }

    [Theory]
    [MemberData(nameof(Headers))]
    public void HugeClaim_WithNoPixelData_IsRefusedForItsSize(string format, byte[] data, long w, long h)
    {
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(data, "x." + format.ToLowerInvariant()));
        Assert.Contains($"{w}x{h}", e.Message);
        Assert.Contains("limit", e.Message);
    }

    [Fact]
    public void RealFixtures_HeaderSizesMatchDecodedSizes()
    {
        foreach (var name in new[] { "extreme_ironing.jpg", "synthetic_500x300.png", "tiny_37x61.png" })
        {
            var bytes = File.ReadAllBytes(Llava.Tests.Fixtures.TinyPath("images", name));
            Assert.True(ImageHeader.TryReadSize(bytes, out _, out long w, out long h), name);
            var img = ImageDecoder.Decode(bytes, name);
            Assert.Equal((img.Width, img.Height), ((int)w, (int)h));
        }
    }
}
