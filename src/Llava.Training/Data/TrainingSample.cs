namespace Llava.Training.Data;

/// <summary>One sample as LLaVA's <c>LazySupervisedDataset.__getitem__</c> returns it.</summary>
public sealed class TrainingSample
{
    /// <summary>Index in the dataset (accepted records).</summary>
    public required int Index { get; init; }
    public required LlavaRecord Record { get; init; }
    public string Id => Record.Id;
    /// <summary>Token ids; the image placeholder is -200. Not truncated (the collator truncates, as in LLaVA), except
    /// text-only conversation samples, which LLaVA's tokenizer call already truncates to model_max_length.</summary>
    public required int[] InputIds { get; init; }
    /// <summary>Labels, -100 where ignored.</summary>
    public required int[] Labels { get; init; }
    /// <summary>LLaVA's tokenization mismatch fired: all labels are -100 (also counted in the dataset's report).</summary>
    public bool TokenizationMismatch { get; init; }
    /// <summary>True when the record has an image; false for text-only samples, whose pixels are all zero.</summary>
    public required bool HasImage { get; init; }
    /// <summary>CLIP pixel values [3, H, W] row-major; zeros for a text-only sample; null when the dataset is not multimodal.</summary>
    public float[]? PixelValues { get; init; }
    public int ImageHeight { get; init; }
    public int ImageWidth { get; init; }
}
