using System.Diagnostics;
using Llava.Tests;
using SkiaSharp;

namespace Llava.Vision.Tests;

public class DecoderTests
{
    /// <summary>Non-square upright image with four flat quadrants of distinct colours.</summary>
    static RgbImage Quadrants(int w, int h)
    {
        var img = new RgbImage(w, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                img.SetPixel(x, y, QuadrantColour(x < w / 2, y < h / 2));
        return img;
    }

    static (byte, byte, byte) QuadrantColour(bool left, bool top) => (left, top) switch
    {
        (true, true) => (230, 30, 30),
        (false, true) => (30, 200, 30),
        (true, false) => (30, 30, 220),
        _ => (240, 240, 40),
    };

    /// <summary>
    /// The stored pixels for an upright image under an EXIF orientation, from the tag's definition (where the
    /// stored 0th row and 0th column lie in the upright picture), independent of the decoder's code.
    /// </summary>
    static RgbImage StoredFor(RgbImage upright, int orientation)
    {
        int W = upright.Width, H = upright.Height;
        bool swap = orientation >= 5;
        var stored = new RgbImage(swap ? H : W, swap ? W : H);
        for (int r = 0; r < stored.Height; r++)
            for (int c = 0; c < stored.Width; c++)
            {
                (int x, int y) = orientation switch
                {
                    1 => (c, r),
                    2 => (W - 1 - c, r),          // row 0 top, column 0 right
                    3 => (W - 1 - c, H - 1 - r),  // row 0 bottom, column 0 right
                    4 => (c, H - 1 - r),          // row 0 bottom, column 0 left
                    5 => (r, c),                  // row 0 left, column 0 top
                    6 => (W - 1 - r, c),          // row 0 right, column 0 top
                    7 => (W - 1 - r, H - 1 - c),  // row 0 right, column 0 bottom
                    _ => (r, H - 1 - c),          // 8: row 0 left, column 0 bottom
                };
                stored.SetPixel(c, r, upright.GetPixel(x, y));
            }
        return stored;
    }

    static byte[] Encode(RgbImage img, SKEncodedImageFormat format, int quality = 100)
    {
        var rgba = new byte[img.Width * img.Height * 4];
        for (int i = 0, j = 0; i < img.Pixels.Length; i += 3, j += 4)
        {
            rgba[j] = img.Pixels[i];
            rgba[j + 1] = img.Pixels[i + 1];
            rgba[j + 2] = img.Pixels[i + 2];
            rgba[j + 3] = 255;
        }
        return EncodeRgba(img.Width, img.Height, rgba, format, quality);
    }

    static unsafe byte[] EncodeRgba(int w, int h, byte[] rgba, SKEncodedImageFormat format, int quality = 100)
    {
        fixed (byte* p = rgba)
        {
            using var pixmap = new SKPixmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul), (IntPtr)p, w * 4);
            using var data = format == SKEncodedImageFormat.Webp
                ? pixmap.Encode(new SKWebpEncoderOptions(SKWebpEncoderCompression.Lossless, 100))
                : pixmap.Encode(format, quality);
            Assert.NotNull(data);
            return data.ToArray();
        }
    }

    static void AssertClose(RgbImage expected, RgbImage actual, int tolerance)
    {
        Assert.Equal((expected.Width, expected.Height), (actual.Width, actual.Height));
        int worst = 0;
        for (int i = 0; i < expected.Pixels.Length; i++) worst = Math.Max(worst, Math.Abs(expected.Pixels[i] - actual.Pixels[i]));
        Assert.True(worst <= tolerance, $"max channel difference {worst} > {tolerance}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(8)]
    public void JpegExifOrientationIsApplied(int orientation)
    {
        var upright = Quadrants(48, 32);
        var jpeg = TestImages.WithExifOrientation(Encode(StoredFor(upright, orientation), SKEncodedImageFormat.Jpeg), orientation);
        var decoded = ImageDecoder.Decode(jpeg, $"orientation{orientation}.jpg");
        Assert.Equal((48, 32), (decoded.Width, decoded.Height));
        // Quadrant centres, far from block edges, so JPEG ringing stays small.
        foreach (var (x, y) in new[] { (12, 8), (36, 8), (12, 24), (36, 24) })
        {
            var expected = QuadrantColour(x < 24, y < 16);
            var got = decoded.GetPixel(x, y);
            Assert.True(Math.Abs(got.R - expected.Item1) <= 12 && Math.Abs(got.G - expected.Item2) <= 12 && Math.Abs(got.B - expected.Item3) <= 12,
                $"orientation {orientation} at ({x},{y}): expected {expected}, got {got}");
        }
    }

    [Fact]
    public void OrientationTransformsMatchTheirDefinitions()
    {
        var rng = new Random(7);
        var upright = new RgbImage(5, 3);
        rng.NextBytes(upright.Pixels);
        for (int o = 1; o <= 8; o++)
            Assert.Equal(upright.Pixels, ExifOrientation.Apply(StoredFor(upright, o), o).Pixels);
    }

    [Fact]
    public void ReferenceJpegHasNoOrientationAndDecodesAtHeaderSize()
    {
        var img = ImageDecoder.Decode(Fixtures.TinyPath("images", "extreme_ironing.jpg"));
        Assert.Equal((570, 380), (img.Width, img.Height));
        var progressive = ImageDecoder.Decode(Path.Combine(Fixtures.Root, "photos", "waterview.jpg"));
        Assert.Equal((1000, 667), (progressive.Width, progressive.Height));
    }

    [Fact]
    public void PngAlphaIsDroppedNotComposited()
    {
        // RGBA pixels: opaque, half transparent, fully transparent with non-zero colour, nearly transparent.
        byte[] rgba =
        [
            10, 20, 30, 255, 200, 100, 50, 128,
            77, 88, 99, 0, 255, 255, 255, 1,
        ];
        var png = TestImages.Png(2, 2, 8, 6, rgba);
        var img = ImageDecoder.Decode(png, "alpha.png");
        Assert.Equal(new byte[] { 10, 20, 30, 200, 100, 50, 77, 88, 99, 255, 255, 255 }, img.Pixels);
    }

    [Fact]
    public void GrayscalePngsBecomeRgb()
    {
        var gray = ImageDecoder.Decode(TestImages.Png(3, 1, 8, 0, [0, 128, 255]), "gray.png");
        Assert.Equal(new byte[] { 0, 0, 0, 128, 128, 128, 255, 255, 255 }, gray.Pixels);

        var grayAlpha = ImageDecoder.Decode(TestImages.Png(2, 1, 8, 4, [90, 0, 200, 64]), "gray-alpha.png");
        Assert.Equal(new byte[] { 90, 90, 90, 200, 200, 200 }, grayAlpha.Pixels);
    }

    [Fact]
    public unsafe void GrayscaleJpegBecomesRgb()
    {
        int w = 32, h = 16;
        var gray = new byte[w * h];
        for (int i = 0; i < gray.Length; i++) gray[i] = (byte)(i % w < 16 ? 40 : 210);
        byte[] jpeg;
        fixed (byte* p = gray)
        {
            using var pixmap = new SKPixmap(new SKImageInfo(w, h, SKColorType.Gray8, SKAlphaType.Opaque), (IntPtr)p, w);
            using var data = pixmap.Encode(SKEncodedImageFormat.Jpeg, 95);
            Assert.NotNull(data);
            jpeg = data.ToArray();
        }
        var img = ImageDecoder.Decode(jpeg, "gray.jpg");
        Assert.Equal((w, h), (img.Width, img.Height));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var (r, g, b) = img.GetPixel(x, y);
                Assert.True(r == g && g == b, $"({x},{y}) = {r},{g},{b}");
            }
        Assert.InRange((int)img.GetPixel(4, 8).R, 36, 44);
        Assert.InRange((int)img.GetPixel(27, 8).R, 206, 214);
    }

    [Fact]
    public void PalettePngWithTransparencyUsesPaletteColours()
    {
        byte[] palette = [255, 0, 0, 0, 255, 0, 12, 34, 56];
        var img = ImageDecoder.Decode(TestImages.Png(3, 1, 8, 3, [2, 0, 1], palette, trns: [255, 255, 40]), "palette.png");
        Assert.Equal(new byte[] { 12, 34, 56, 255, 0, 0, 0, 255, 0 }, img.Pixels);
    }

    [Fact]
    public void SixteenBitPngKeepsHighByte()
    {
        // 0x12FF would round to 0x13; PIL's RGB;16B unpacker keeps 0x12.
        byte[] rgb16 = [0x12, 0xFF, 0x80, 0x00, 0xFF, 0xFF, 0x00, 0x7F, 0xAB, 0x80, 0x01, 0x01];
        var img = ImageDecoder.Decode(TestImages.Png(2, 1, 16, 2, rgb16), "rgb16.png");
        Assert.Equal(new byte[] { 0x12, 0x80, 0xFF, 0x00, 0xAB, 0x01 }, img.Pixels);

        byte[] rgba16 = [0x12, 0xFF, 0x80, 0x00, 0xFF, 0xFF, 0x10, 0x00];
        var withAlpha = ImageDecoder.Decode(TestImages.Png(1, 1, 16, 6, rgba16), "rgba16.png");
        Assert.Equal(new byte[] { 0x12, 0x80, 0xFF }, withAlpha.Pixels);

        // 16-bit gray: high byte too (PIL would clip these to 255; see ImageDecoder's remarks).
        var gray16 = ImageDecoder.Decode(TestImages.Png(2, 1, 16, 0, [0x12, 0xFF, 0x80, 0x00]), "gray16.png");
        Assert.Equal(new byte[] { 0x12, 0x12, 0x12, 0x80, 0x80, 0x80 }, gray16.Pixels);
    }

    [Fact]
    public void BmpDecodes()
    {
        var img = new RgbImage(5, 3);
        new Random(1).NextBytes(img.Pixels);
        Assert.Equal(img.Pixels, ImageDecoder.Decode(TestImages.Bmp24(img), "test.bmp").Pixels);
    }

    [Fact]
    public void GifDecodesFirstFrame()
    {
        var palette = new byte[128 * 3];
        for (int i = 0; i < 128; i++) (palette[i * 3], palette[i * 3 + 1], palette[i * 3 + 2]) = ((byte)(i * 2), (byte)(255 - i), (byte)(i * 7 % 256));
        int w = 20, h = 9;
        var first = new byte[w * h];
        var second = new byte[w * h];
        for (int i = 0; i < first.Length; i++) (first[i], second[i]) = ((byte)(i * 13 % 128), (byte)(i % 5));
        var img = ImageDecoder.Decode(TestImages.Gif(w, h, palette, first, second), "anim.gif");
        Assert.Equal((w, h), (img.Width, img.Height));
        for (int i = 0; i < first.Length; i++)
            Assert.Equal((palette[first[i] * 3], palette[first[i] * 3 + 1], palette[first[i] * 3 + 2]), img.GetPixel(i % w, i / w));
    }

    [Fact]
    public void LosslessWebpDecodes()
    {
        var img = new RgbImage(17, 11);
        new Random(2).NextBytes(img.Pixels);
        var webp = Encode(img, SKEncodedImageFormat.Webp);
        Assert.Equal("RIFF", System.Text.Encoding.ASCII.GetString(webp, 0, 4));
        Assert.Equal(img.Pixels, ImageDecoder.Decode(webp, "test.webp").Pixels);
    }

    [Fact]
    public void WebpAlphaIsDropped()
    {
        byte[] rgba = [200, 100, 50, 128, 77, 88, 99, 10];
        var webp = EncodeRgba(2, 1, rgba, SKEncodedImageFormat.Webp);
        Assert.Equal(new byte[] { 200, 100, 50, 77, 88, 99 }, ImageDecoder.Decode(webp, "alpha.webp").Pixels);
    }

    [Fact]
    public void HugeHeaderIsRefusedBeforeAllocating()
    {
        var bomb = TestImages.PngHeaderOnly(100_000, 100_000);
        var sw = Stopwatch.StartNew();
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(bomb, "bomb.png"));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        sw.Stop();
        Assert.Contains("bomb.png", e.Message);
        Assert.Contains("100000x100000", e.Message);
        Assert.True(sw.ElapsedMilliseconds < 1000, $"took {sw.ElapsedMilliseconds} ms");
        Assert.True(allocated < 1 << 20, $"allocated {allocated} bytes");
    }

    [Fact]
    public void LimitsAreConfigurable()
    {
        var png = TestImages.Png(30, 20, 8, 2, new byte[30 * 20 * 3]);
        Assert.Equal(30, ImageDecoder.Decode(png).Width);
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(png, "small.png", new ImageLimits(MaxPixels: 500)));
        Assert.Contains("30x20", e.Message);
        Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(png, "small.png", new ImageLimits(MaxSide: 25)));
        Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(png, "small.png", new ImageLimits(MaxEncodedBytes: 10)));
    }

    [Fact]
    public void TruncatedImagesAreRefused()
    {
        var jpeg = File.ReadAllBytes(Fixtures.TinyPath("images", "extreme_ironing.jpg"));
        var png = File.ReadAllBytes(Fixtures.TinyPath("images", "synthetic_500x300.png"));
        foreach (var (data, name) in new[] { (jpeg, "cut.jpg"), (png, "cut.png") })
        {
            foreach (double fraction in new[] { 0.5, 0.9 })
            {
                var cut = data.AsSpan(0, (int)(data.Length * fraction)).ToArray();
                var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(cut, name));
                Assert.StartsWith(name + ":", e.Message);
            }
            // Only the first few bytes: not even a complete header.
            Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(data.AsSpan(0, 20), name));
        }
    }

    [Fact]
    public void GarbageAndEmptyInputsAreRefused()
    {
        var rng = new Random(3);
        for (int i = 0; i < 20; i++)
        {
            var junk = new byte[rng.Next(1, 5000)];
            rng.NextBytes(junk);
            Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(junk, "junk.bin"));
        }
        Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(ReadOnlySpan<byte>.Empty, "empty"));
        // A valid signature followed by garbage.
        var fakePng = TestImages.PngSignature.Concat(new byte[100].Select((_, i) => (byte)i)).ToArray();
        Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(fakePng, "fake.png"));
        var fakeJpeg = new byte[] { 0xFF, 0xD8, 0xFF, 0xE0 }.Concat(Enumerable.Repeat((byte)0x55, 300)).ToArray();
        Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(fakeJpeg, "fake.jpg"));
    }

    [Fact]
    public void MissingFileIsReportedAsDecodeError()
    {
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode("/nonexistent/dir/x.png"));
        Assert.Contains("/nonexistent/dir/x.png", e.Message);
    }
}
