namespace Llava.Training.Data;

/// <summary>The Python <c>str</c> operations LLaVA's data code relies on, with Python's whitespace rules.</summary>
internal static class PyStr
{
    /// <summary>Python's <c>str.isspace()</c> for one UTF-16 unit.</summary>
    public static bool IsSpace(char c) =>
        c is >= '\t' and <= '\r' or >= '\x1c' and <= '\x1f' or ' ' or '\x85' or '\xa0'
        || (c > 0xff && char.IsWhiteSpace(c));

    /// <summary><c>s.strip()</c></summary>
    public static string Strip(string s)
    {
        int a = 0, b = s.Length;
        while (a < b && IsSpace(s[a])) a++;
        while (b > a && IsSpace(s[b - 1])) b--;
        return s[a..b];
    }

    /// <summary><c>len(s.split())</c>: the number of whitespace-separated words.</summary>
    public static int WordCount(string s)
    {
        int n = 0;
        bool inWord = false;
        foreach (char c in s)
        {
            bool space = IsSpace(c);
            if (!space && !inWord) n++;
            inWord = !space;
        }
        return n;
    }

    /// <summary><c>s.split(sep)</c> (sep non-empty).</summary>
    public static string[] Split(string s, string sep) => s.Split(sep, StringSplitOptions.None);

    /// <summary>Python slice assignment <c>a[start:stop] = value</c> (negative bounds count from the end; clamped).</summary>
    public static void FillSlice(int[] a, int start, int? stop, int value)
    {
        int n = a.Length;
        int s = Normalize(start, n);
        int e = stop is int st ? Normalize(st, n) : n;
        for (int i = s; i < e; i++) a[i] = value;

        static int Normalize(int i, int n) => i < 0 ? Math.Max(0, i + n) : Math.Min(i, n);
    }
}
