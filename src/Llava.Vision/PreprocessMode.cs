namespace Llava.Vision;

/// <summary>How an image is fitted before CLIP preprocessing.</summary>
public enum PreprocessMode
{
    /// <summary>HF default: resize shortest edge, then center crop (crops away the long side's ends).</summary>
    Default,
    /// <summary>LLaVA <c>image_aspect_ratio: pad</c>: <c>expand2square</c> with the mean colour, then as Default.</summary>
    Pad,
}
