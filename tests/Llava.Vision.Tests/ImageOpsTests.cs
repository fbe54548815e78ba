namespace Llava.Vision.Tests;

public class ImageOpsTests
{
    static RgbImage Noise(int w, int h, int seed)
    {
        var img = new RgbImage(w, h);
        new Random(seed).NextBytes(img.Pixels);
        return img;
    }

    [Theory]
    [InlineData(5, 2)]   // wide: side 5, pasted at y = (5 - 2) / 2 = 1
    [InlineData(2, 5)]   // tall: pasted at x = 1
    [InlineData(6, 3)]   // y = 1 (floor of 1.5)
    [InlineData(1, 4)]   // x = 1
    [InlineData(570, 380)]
    public void ExpandToSquareGeometry(int w, int h)
    {
        var img = Noise(w, h, w * 31 + h);
        var bg = ((byte)122, (byte)116, (byte)104);
        var sq = ImageOps.ExpandToSquare(img, bg);
        int side = Math.Max(w, h);
        Assert.Equal((side, side), (sq.Width, sq.Height));
        int left = w > h ? 0 : (side - w) / 2, top = w > h ? (side - h) / 2 : 0;
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
            {
                bool inside = x >= left && x < left + w && y >= top && y < top + h;
                Assert.Equal(inside ? img.GetPixel(x - left, y - top) : bg, sq.GetPixel(x, y));
            }
    }

    [Fact]
    public void ExpandToSquareKeepsSquareImage()
    {
        var img = Noise(4, 4, 1);
        Assert.Same(img, ClipImageProcessor.ExpandToSquare(img, (0, 0, 0)));
    }

    /// <summary>Line-by-line transcription of transformers' center_crop (both branches) as the oracle.</summary>
    static RgbImage TransformersCenterCrop(RgbImage img, int cropH, int cropW)
    {
        int origH = img.Height, origW = img.Width;
        int top = (int)Math.Floor((origH - cropH) / 2.0), bottom = top + cropH;
        int left = (int)Math.Floor((origW - cropW) / 2.0), right = left + cropW;
        if (top >= 0 && bottom <= origH && left >= 0 && right <= origW)
        {
            var o = new RgbImage(cropW, cropH);
            for (int y = 0; y < cropH; y++)
                for (int x = 0; x < cropW; x++) o.SetPixel(x, y, img.GetPixel(x + left, y + top));
            return o;
        }
        int newH = Math.Max(cropH, origH), newW = Math.Max(cropW, origW);
        var padded = new RgbImage(newW, newH);
        int topPad = (int)Math.Ceiling((newH - origH) / 2.0), leftPad = (int)Math.Ceiling((newW - origW) / 2.0);
        for (int y = 0; y < origH; y++)
            for (int x = 0; x < origW; x++) padded.SetPixel(x + leftPad, y + topPad, img.GetPixel(x, y));
        top += topPad; bottom += topPad; left += leftPad; right += leftPad;
        int y0 = Math.Max(0, top), y1 = Math.Min(newH, bottom), x0 = Math.Max(0, left), x1 = Math.Min(newW, right);
        var res = new RgbImage(x1 - x0, y1 - y0);
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) res.SetPixel(x - x0, y - y0, padded.GetPixel(x, y));
        return res;
    }

    [Fact]
    public void CenterCropMatchesTransformersIncludingPadding()
    {
        var rng = new Random(8);
        for (int trial = 0; trial < 300; trial++)
        {
            int w = rng.Next(1, 20), h = rng.Next(1, 20), cw = rng.Next(1, 20), ch = rng.Next(1, 20);
            var img = Noise(w, h, trial);
            var expected = TransformersCenterCrop(img, ch, cw);
            var actual = ImageOps.CenterCrop(img, ch, cw);
            Assert.Equal((expected.Width, expected.Height), (actual.Width, actual.Height));
            Assert.True(expected.Pixels.AsSpan().SequenceEqual(actual.Pixels), $"{w}x{h} crop {cw}x{ch}");
        }
    }

    [Fact]
    public void RgbImageAccessors()
    {
        var img = new RgbImage(3, 2);
        img.SetPixel(2, 1, 1, 2, 3);
        Assert.Equal((1, 2, 3), ((int)img.GetPixel(2, 1).R, (int)img.GetPixel(2, 1).G, (int)img.GetPixel(2, 1).B));
        Assert.Equal(new byte[] { 1, 2, 3 }, img.Pixels[15..18]);
        Assert.Throws<ArgumentOutOfRangeException>(() => img.GetPixel(3, 0));
        Assert.Throws<ArgumentException>(() => new RgbImage(2, 2, new byte[11]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RgbImage(0, 2));
    }
}
