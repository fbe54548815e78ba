namespace Llava.Text;

/// <summary>
/// A chat template could not be parsed or rendered: unsupported or malformed syntax, a type error, a
/// <c>raise_exception(...)</c> call in the template, or a safety limit (steps, output size, nesting) was hit.
/// </summary>
public sealed class ChatTemplateException : Exception
{
    /// <summary>1-based line of the offending construct in the template source, or 0 when unknown.</summary>
    public int Line { get; }
    /// <summary>1-based column of the offending construct, or 0 when unknown.</summary>
    public int Column { get; }
    /// <summary>True when the template itself called <c>raise_exception(message)</c>.</summary>
    public bool RaisedByTemplate { get; }

    public ChatTemplateException(string message, int line = 0, int column = 0, bool raisedByTemplate = false, Exception? inner = null)
        : base(line > 0 ? $"{message} (line {line}, column {column})" : message, inner)
    {
        Line = line;
        Column = column;
        RaisedByTemplate = raisedByTemplate;
    }
}
