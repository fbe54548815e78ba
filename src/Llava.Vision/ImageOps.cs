namespace Llava.Vision;

/// <summary>Geometry helpers on <see cref="RgbImage"/> that mirror LLaVA / transformers numpy code.</summary>
public static class ImageOps
{
    /// <summary>
    /// LLaVA's <c>expand2square</c>: a square canvas of side max(w, h) filled with <paramref name="background"/>,
    /// the image pasted at ((side - w) / 2, 0) or (0, (side - h) / 2) (floor division). A square input is returned
    /// as is (the same instance, as LLaVA returns the same PIL image).
    /// </summary>
    public static RgbImage ExpandToSquare(RgbImage image, (byte R, byte G, byte B) background)
    {
        ArgumentNullException.ThrowIfNull(image);
        int w = image.Width, h = image.Height;
        if (w == h) return image;
        int side = Math.Max(w, h);
        var canvas = new RgbImage(side, side);
        canvas.Fill(background.R, background.G, background.B);
        int left = w > h ? 0 : (side - w) / 2;
        int top = w > h ? (side - h) / 2 : 0;
        Paste(image, canvas, left, top);
        return canvas;
    }

    /// <summary>
    /// transformers' <c>image_transforms.center_crop</c> on uint8 pixels: top = floor((h - crop_h) / 2),
    /// left = floor((w - crop_w) / 2); where the image is smaller than the crop it is centred on a zero
    /// (black) canvas with the larger margin, ceil((crop - size) / 2), before it. Always returns crop size.
    /// </summary>
    public static RgbImage CenterCrop(RgbImage image, int cropHeight, int cropWidth)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (cropHeight <= 0 || cropWidth <= 0) throw new ArgumentOutOfRangeException(nameof(cropHeight), $"crop size must be positive, got {cropHeight}x{cropWidth}");
        int h = image.Height, w = image.Width;
        if (h == cropHeight && w == cropWidth) return image.Clone();
        // Both of transformers' branches reduce to: output (r, c) = input (r + top, c + left), zero outside,
        // with Python floor division (the padding branch's offsets cancel to exactly this).
        int top = FloorDiv2(h - cropHeight), left = FloorDiv2(w - cropWidth);
        var dst = new RgbImage(cropWidth, cropHeight);
        int x0 = Math.Max(0, -left), x1 = Math.Min(cropWidth, w - left);
        if (x1 <= x0) return dst;
        for (int r = 0; r < cropHeight; r++)
        {
            int sy = r + top;
            if (sy < 0 || sy >= h) continue;
            image.Pixels.AsSpan((sy * w + x0 + left) * 3, (x1 - x0) * 3)
                .CopyTo(dst.Pixels.AsSpan((r * cropWidth + x0) * 3));
        }
        return dst;
    }

    /// <summary>Copies <paramref name="src"/> into <paramref name="dst"/> with its top-left corner at (left, top), clipped.</summary>
    public static void Paste(RgbImage src, RgbImage dst, int left, int top)
    {
        int x0 = Math.Max(0, -left), x1 = Math.Min(src.Width, dst.Width - left);
        if (x1 <= x0) return;
        for (int y = Math.Max(0, -top); y < src.Height && y + top < dst.Height; y++)
        {
            src.Pixels.AsSpan((y * src.Width + x0) * 3, (x1 - x0) * 3)
                .CopyTo(dst.Pixels.AsSpan(((y + top) * dst.Width + x0 + left) * 3));
        }
    }

    static int FloorDiv2(int v) => v >> 1; // arithmetic shift == Python's // 2, also for negatives
}
