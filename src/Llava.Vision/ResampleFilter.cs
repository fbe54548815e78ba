namespace Llava.Vision;

/// <summary>Resampling filters, numbered as PIL's <c>Image.Resampling</c> (the "resample" value in HF configs).</summary>
public enum ResampleFilter
{
    Nearest = 0,
    Lanczos = 1,
    Bilinear = 2,
    Bicubic = 3,
    Box = 4,
    Hamming = 5,
}
