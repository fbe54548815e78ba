namespace Llava.Vision;

/// <summary>
/// An 8-bit RGB image: rows top to bottom, pixels interleaved R,G,B (the layout PIL's "RGB" mode exposes
/// through numpy, which is what every preprocessing step here mirrors).
/// </summary>
public sealed class RgbImage
{
    public int Width { get; }
    public int Height { get; }

    /// <summary>Interleaved RGB bytes, length <c>Width * Height * 3</c>.</summary>
    public byte[] Pixels { get; }

    /// <summary>Bytes per row.</summary>
    public int Stride => Width * 3;

    public RgbImage(int width, int height)
    {
        CheckSize(width, height);
        Width = width;
        Height = height;
        Pixels = new byte[checked(width * height * 3)];
    }

    /// <summary>Wraps (does not copy) <paramref name="pixels"/>.</summary>
    public RgbImage(int width, int height, byte[] pixels)
    {
        CheckSize(width, height);
        ArgumentNullException.ThrowIfNull(pixels);
        if (pixels.Length != checked(width * height * 3))
            throw new ArgumentException($"expected {width}x{height}x3 = {(long)width * height * 3} bytes, got {pixels.Length}", nameof(pixels));
        Width = width;
        Height = height;
        Pixels = pixels;
    }

    public (byte R, byte G, byte B) GetPixel(int x, int y)
    {
        int i = Index(x, y);
        return (Pixels[i], Pixels[i + 1], Pixels[i + 2]);
    }

    public void SetPixel(int x, int y, byte r, byte g, byte b)
    {
        int i = Index(x, y);
        Pixels[i] = r;
        Pixels[i + 1] = g;
        Pixels[i + 2] = b;
    }

    public void SetPixel(int x, int y, (byte R, byte G, byte B) rgb) => SetPixel(x, y, rgb.R, rgb.G, rgb.B);

    /// <summary>Sets every pixel to one colour.</summary>
    public void Fill(byte r, byte g, byte b)
    {
        var row = Pixels.AsSpan(0, Stride);
        for (int i = 0; i < row.Length; i += 3)
        {
            row[i] = r;
            row[i + 1] = g;
            row[i + 2] = b;
        }
        for (int y = 1; y < Height; y++) row.CopyTo(Pixels.AsSpan(y * Stride, Stride));
    }

    public RgbImage Clone() => new(Width, Height, (byte[])Pixels.Clone());

    int Index(int x, int y)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height)
            throw new ArgumentOutOfRangeException($"pixel ({x},{y}) outside {Width}x{Height}");
        return (y * Width + x) * 3;
    }

    static void CheckSize(int width, int height)
    {
        if (width <= 0 || height <= 0)
            throw new ArgumentOutOfRangeException(nameof(width), $"image size must be positive, got {width}x{height}");
    }

    public override string ToString() => $"RgbImage {Width}x{Height}";
}
