namespace Llava.Models.Gguf;

/// <summary>How <see cref="GgufExporter"/> writes a checkpoint.</summary>
public sealed record GgufExportOptions
{
    public GgufOutputType OutputType { get; init; } = GgufOutputType.F16;
    /// <summary>The CLIP checkpoint directory of an original-layout model (else mm_vision_tower resolved as a local path).</summary>
    public string? VisionTower { get; init; }
}
