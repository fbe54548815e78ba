namespace Llava.Text;

/// <summary>Python <c>str</c> helpers whose exact semantics the reference code relies on.</summary>
internal static class PythonText
{
    /// <summary>Python's <c>str.isspace()</c> for one character.</summary>
    public static bool IsSpace(char c) =>
        c is >= '\t' and <= '\r' or >= '\x1c' and <= '\x1f' or ' ' or '\x85' or '\xa0'
        || (c > 0xff && char.IsWhiteSpace(c));

    /// <summary><c>s.strip()</c></summary>
    public static string Strip(string s) => RStrip(LStrip(s));

    /// <summary><c>s.lstrip()</c></summary>
    public static string LStrip(string s)
    {
        int i = 0;
        while (i < s.Length && IsSpace(s[i])) i++;
        return s[i..];
    }

    /// <summary><c>s.rstrip()</c></summary>
    public static string RStrip(string s)
    {
        int e = s.Length;
        while (e > 0 && IsSpace(s[e - 1])) e--;
        return s[..e];
    }

    /// <summary><c>s.lstrip(chars)</c>: removes leading characters that occur anywhere in <paramref name="chars"/>.</summary>
    public static string LStrip(string s, string chars)
    {
        int i = 0;
        while (i < s.Length && chars.Contains(s[i])) i++;
        return s[i..];
    }
}
