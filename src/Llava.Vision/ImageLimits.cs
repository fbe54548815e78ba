namespace Llava.Vision;

/// <summary>
/// Limits checked against the image header before any pixel memory is allocated, so a small file that
/// claims a huge canvas (a "decompression bomb") is refused cheaply.
/// </summary>
/// <param name="MaxPixels">Maximum width*height (default 50 megapixels; PIL warns at ~89 MP).</param>
/// <param name="MaxSide">Maximum width or height in pixels.</param>
/// <param name="MaxEncodedBytes">Maximum size of the encoded file.</param>
public sealed record ImageLimits(long MaxPixels = 50_000_000, int MaxSide = 20_000, long MaxEncodedBytes = 512L * 1024 * 1024)
{
    public static ImageLimits Default { get; } = new();
}
