namespace Llava.Vision;

/// <summary>An image could not be decoded: unreadable, unsupported, corrupt, truncated or over the size limits.</summary>
public sealed class ImageDecodeException : Exception
{
    /// <summary>The file name (or caller-supplied label) of the image, if known.</summary>
    public string? ImageName { get; }

    public ImageDecodeException(string? imageName, string message, Exception? inner = null)
        : base((imageName is null ? "" : imageName + ": ") + message, inner)
    {
        ImageName = imageName;
    }
}
