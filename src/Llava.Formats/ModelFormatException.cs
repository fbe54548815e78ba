namespace Llava.Formats;

/// <summary>A model or weight file is malformed, truncated, hostile or unsupported. The message names the file and what is wrong.</summary>
public sealed class ModelFormatException : Exception
{
    public ModelFormatException(string message) : base(message) { }
    public ModelFormatException(string message, Exception inner) : base(message, inner) { }
}
