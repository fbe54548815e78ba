namespace Llava.Training.Synthetic;

/// <summary>Knobs of the shapes world. The defaults are what the shipped dataset uses.</summary>
public sealed record ShapesWorldOptions
{
    public static ShapesWorldOptions Default { get; } = new();

    /// <summary>Square canvas side in pixels (224 for CLIP ViT-B/32 and /16 style towers, 336 for LLaVA-1.5's).</summary>
    public int CanvasSize { get; init; } = 224;

    /// <summary>Fewest shapes per scene (at least 1).</summary>
    public int MinShapes { get; init; } = 1;

    /// <summary>Most shapes per scene (at most 5, one per position).</summary>
    public int MaxShapes { get; init; } = 4;

    /// <summary>Per-channel random offset (±) applied to each shape's nominal palette colour.</summary>
    public int ColorJitter { get; init; } = 12;

    /// <summary>zlib level for PNG encoding, 0-9 (rows are unfiltered: these flat images compress well without
    /// filters, and encoding is 3-5x faster than with filter search). Level 3: ~0.6 ms and ~3.7 KB per 224² image.</summary>
    public int PngCompressionLevel { get; init; } = 3;

    public void Validate()
    {
        if (CanvasSize is < 48 or > 2048) throw new ArgumentOutOfRangeException(nameof(CanvasSize), CanvasSize, "canvas size must be 48..2048");
        if (MinShapes < 1 || MaxShapes > 5 || MinShapes > MaxShapes)
            throw new ArgumentOutOfRangeException(nameof(MinShapes), $"shape count range {MinShapes}..{MaxShapes} must lie within 1..5");
        if (ColorJitter is < 0 or > 30) throw new ArgumentOutOfRangeException(nameof(ColorJitter), ColorJitter, "colour jitter must be 0..30");
        if (PngCompressionLevel is < 0 or > 9) throw new ArgumentOutOfRangeException(nameof(PngCompressionLevel), PngCompressionLevel, "PNG level must be 0..9");
    }
}
