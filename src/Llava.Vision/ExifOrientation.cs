namespace Llava.Vision;

/// <summary>
/// Applies an EXIF orientation tag (1..8) to pixels, with the same result as PIL's
/// <c>ImageOps.exif_transpose</c> (2 = mirror, 3 = rotate 180, 4 = flip, 5 = transpose,
/// 6 = rotate 90 clockwise, 7 = transverse, 8 = rotate 90 counter-clockwise).
/// </summary>
public static class ExifOrientation
{
    /// <summary>Returns the upright image; orientation 1 or an unknown value returns <paramref name="image"/> itself.</summary>
    public static RgbImage Apply(RgbImage image, int orientation)
    {
        if (orientation < 2 || orientation > 8) return image;
        int w = image.Width, h = image.Height;
        bool swap = orientation >= 5;
        int ow = swap ? h : w, oh = swap ? w : h;
        var dst = new RgbImage(ow, oh);
        var s = image.Pixels;
        var d = dst.Pixels;
        for (int y = 0; y < oh; y++)
        {
            for (int x = 0; x < ow; x++)
            {
                // Source pixel that lands on (x, y) of the upright image.
                (int sx, int sy) = orientation switch
                {
                    2 => (w - 1 - x, y),
                    3 => (w - 1 - x, h - 1 - y),
                    4 => (x, h - 1 - y),
                    5 => (y, x),
                    6 => (y, h - 1 - x),
                    7 => (w - 1 - y, h - 1 - x),
                    _ => (w - 1 - y, x), // 8
                };
                int si = (sy * w + sx) * 3, di = (y * ow + x) * 3;
                d[di] = s[si];
                d[di + 1] = s[si + 1];
                d[di + 2] = s[si + 2];
            }
        }
        return dst;
    }
}
