namespace Llava.Vision.Tests;

public class ResizeTests
{
    [Theory]
    // (height, width, edge) -> expected (height, width) from transformers' formula, worked by hand:
    // short side = edge, long side = int(edge * long / short).
    [InlineData(380, 570, 336, 336, 504)]
    [InlineData(300, 500, 336, 336, 560)]
    [InlineData(61, 37, 336, 553, 336)]   // 336*61/37 = 553.95 -> 553
    [InlineData(336, 336, 336, 336, 336)]
    [InlineData(1, 1000, 336, 336, 336000)]
    [InlineData(3, 7, 224, 224, 522)]     // 224*7/3 = 522.67 -> 522
    [InlineData(7, 3, 224, 522, 224)]
    [InlineData(667, 1000, 336, 336, 503)] // 503.748 -> 503
    [InlineData(1000, 999, 224, 224, 224)] // 224*1000/999 = 224.22 -> 224
    [InlineData(5, 5, 2, 2, 2)]
    public void OutputSizeFollowsTransformers(int h, int w, int edge, int eh, int ew)
    {
        Assert.Equal((eh, ew), ClipImageProcessor.GetShortestEdgeOutputSize(h, w, edge));
    }

    [Fact]
    public void OutputSizeTruncatesLikePythonTrueDivision()
    {
        // Where edge * long / short is an exact integer the division must not land just below it.
        for (int s = 1; s < 300; s++)
            for (int l = s; l < 900; l += 7)
            {
                int expected = (int)Math.Floor((decimal)336 * l / s);
                Assert.Equal((336, expected), ClipImageProcessor.GetShortestEdgeOutputSize(s, l, 336));
            }
    }

    [Fact]
    public void ExactSizeConfigIgnoresAspect()
    {
        var cfg = new ClipImageProcessorConfig { SizeShortestEdge = null, SizeHeight = 100, SizeWidth = 50 };
        Assert.Equal((100, 50), ClipImageProcessor.GetResizeOutputSize(300, 500, cfg));
    }

    [Theory]
    [InlineData(ResampleFilter.Bicubic)]
    [InlineData(ResampleFilter.Bilinear)]
    public void OptimisedResizeMatchesScalarReference(ResampleFilter filter)
    {
        var rng = new Random(12345 + (int)filter);
        for (int trial = 0; trial < 60; trial++)
        {
            int w = rng.Next(1, 90), h = rng.Next(1, 90);
            var src = new RgbImage(w, h);
            // Mix of noise and hard edges so clipping (overshoot below 0 / above 255) is exercised.
            if (trial % 2 == 0) rng.NextBytes(src.Pixels);
            else
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                    {
                        byte v = (byte)(((x / 3 + y / 2) & 1) * 255);
                        src.SetPixel(x, y, v, (byte)(255 - v), (byte)rng.Next(256));
                    }
            int ow = rng.Next(1, 120), oh = rng.Next(1, 120);
            if (trial % 10 == 1) ow = w;  // vertical-only
            if (trial % 10 == 2) oh = h;  // horizontal-only
            var fast = PilResampler.Resize(src, ow, oh, filter);
            var slow = ScalarPilResize.Resize(src, ow, oh, filter);
            Assert.Equal((ow, oh), (fast.Width, fast.Height));
            Assert.True(slow.Pixels.AsSpan().SequenceEqual(fast.Pixels), $"trial {trial}: {w}x{h} -> {ow}x{oh}");
        }
    }

    [Fact]
    public void LargeParallelResizeMatchesScalarReference()
    {
        // Big enough to take the parallel paths in both passes.
        var rng = new Random(99);
        var src = new RgbImage(1300, 900);
        rng.NextBytes(src.Pixels);
        Assert.Equal(ScalarPilResize.Resize(src, 500, 347, ResampleFilter.Bicubic).Pixels,
            PilResampler.Resize(src, 500, 347, ResampleFilter.Bicubic).Pixels);
    }

    [Fact]
    public void KnownPillowValues()
    {
        // A constant image stays constant (weights sum to 1 in fixed point, up to rounding).
        var flat = new RgbImage(13, 7);
        flat.Fill(200, 100, 3);
        var r = PilResampler.Resize(flat, 5, 19, ResampleFilter.Bicubic);
        Assert.All(Enumerable.Range(0, r.Width * r.Height), i => Assert.Equal((200, 100, 3), ((int)r.Pixels[i * 3], (int)r.Pixels[i * 3 + 1], (int)r.Pixels[i * 3 + 2])));
        // Same size is an exact copy, not a filtered image.
        var noise = new RgbImage(9, 4);
        new Random(5).NextBytes(noise.Pixels);
        var same = PilResampler.Resize(noise, 9, 4);
        Assert.Equal(noise.Pixels, same.Pixels);
        Assert.NotSame(noise.Pixels, same.Pixels);
    }

    [Fact]
    public void NearestIsRejectedClearly()
    {
        var e = Assert.Throws<NotSupportedException>(() => PilResampler.Resize(new RgbImage(4, 4), 2, 2, ResampleFilter.Nearest));
        Assert.Contains("nearest", e.Message);
    }
}
