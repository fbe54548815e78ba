using System.Globalization;
using System.Text;

namespace Llava.Text.Jinja;

internal enum TokenKind { Name, String, Integer, Float, Operator, End }

internal readonly record struct Token(TokenKind Kind, string Text, object? Value, int Offset);

internal enum ItemKind { Text, Output, Statement }

/// <summary>One piece of the template: literal text, a <c>{{ }}</c> expression or a <c>{% %}</c> statement.</summary>
internal sealed record Item(ItemKind Kind, string Text, List<Token> Tokens, int Offset);

/// <summary>Maps source offsets to 1-based line and column numbers.</summary>
internal sealed class SourceMap
{
    readonly List<int> lineStarts = [0];

    public SourceMap(string source)
    {
        for (int i = 0; i < source.Length; i++)
            if (source[i] == '\n') lineStarts.Add(i + 1);
    }

    public (int Line, int Column) Locate(int offset)
    {
        int idx = lineStarts.BinarySearch(offset);
        if (idx < 0) idx = ~idx - 1;
        return (idx + 1, offset - lineStarts[idx] + 1);
    }

    public ChatTemplateException Error(string message, int offset)
    {
        var (line, col) = Locate(offset);
        return new ChatTemplateException(message, line, col);
    }
}

/// <summary>
/// Splits a template into text and tags, applying Jinja's whitespace control (<c>-</c> / <c>+</c> modifiers,
/// <c>trim_blocks</c>, <c>lstrip_blocks</c>) and tokenizing the inside of each tag.
/// </summary>
internal static class Lexer
{
    static readonly string[] Operators = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "="];

    public static List<Item> Tokenize(string src, SourceMap map, bool trimBlocks, bool lstripBlocks)
    {
        var items = new List<Item>();
        int pos = 0;
        bool stripNextStart = false, trimNextNewline = false;
        while (pos <= src.Length)
        {
            int open = FindTagStart(src, pos);
            int textEnd = open < 0 ? src.Length : open;
            string raw = src.Substring(pos, textEnd - pos);
            string text = raw;
            if (stripNextStart) text = text.TrimStart();
            else if (trimNextNewline)
            {
                if (text.StartsWith("\r\n", StringComparison.Ordinal)) text = text[2..];
                else if (text.StartsWith('\n')) text = text[1..];
            }
            if (open < 0)
            {
                if (text.Length > 0) items.Add(new Item(ItemKind.Text, text, [], pos));
                break;
            }

            char kind = src[open + 1];
            int inner = open + 2;
            char modifier = inner < src.Length ? src[inner] : '\0';
            bool isBlock = kind is '%' or '#';
            if (modifier == '-') { text = text.TrimEnd(); inner++; }
            else if (modifier == '+' && isBlock) inner++;
            else if (isBlock && lstripBlocks && AtLineStart(raw, pos)) text = text.TrimEnd(' ', '\t');
            if (text.Length > 0) items.Add(new Item(ItemKind.Text, text, [], pos));

            bool rightStrip;
            if (kind == '#')
            {
                int close = src.IndexOf("#}", inner, StringComparison.Ordinal);
                if (close < 0) throw map.Error("unclosed comment '{#'", open);
                rightStrip = close > inner && src[close - 1] == '-';
                pos = close + 2;
            }
            else
            {
                var tokens = new List<Token>();
                pos = ReadTag(src, inner, kind == '%' ? '%' : '}', tokens, map, open, out rightStrip);
                items.Add(new Item(kind == '%' ? ItemKind.Statement : ItemKind.Output, "", tokens, open));
            }
            stripNextStart = rightStrip;
            trimNextNewline = isBlock && trimBlocks;
        }
        return items;
    }

    static int FindTagStart(string src, int from)
    {
        for (int i = src.IndexOf('{', from); i >= 0 && i + 1 < src.Length; i = src.IndexOf('{', i + 1))
            if (src[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>lstrip_blocks: only whitespace between the start of the line and the tag.</summary>
    static bool AtLineStart(string raw, int rawStart)
    {
        int nl = raw.LastIndexOf('\n');
        if (nl < 0 && rawStart != 0) return false;
        for (int i = nl + 1; i < raw.Length; i++)
            if (raw[i] is not (' ' or '\t')) return false;
        return true;
    }

    /// <summary>Tokenizes a tag body up to its closing <c>%}</c> or <c>}}</c>; returns the offset after it.</summary>
    static int ReadTag(string src, int i, char closer, List<Token> tokens, SourceMap map, int open, out bool rightStrip)
    {
        int depth = 0;
        while (true)
        {
            while (i < src.Length && char.IsWhiteSpace(src[i])) i++;
            if (i >= src.Length) throw map.Error(closer == '%' ? "unclosed statement tag '{%'" : "unclosed expression tag '{{'", open);
            if (depth == 0)
            {
                if (src[i] == '-' && i + 2 < src.Length && src[i + 1] == closer && src[i + 2] == '}')
                {
                    tokens.Add(new Token(TokenKind.End, "", null, i));
                    rightStrip = true;
                    return i + 3;
                }
                if (src[i] == closer && i + 1 < src.Length && src[i + 1] == '}')
                {
                    tokens.Add(new Token(TokenKind.End, "", null, i));
                    rightStrip = false;
                    return i + 2;
                }
            }
            char c = src[i];
            int start = i;
            if (char.IsAsciiLetter(c) || c == '_')
            {
                while (i < src.Length && (char.IsAsciiLetterOrDigit(src[i]) || src[i] == '_')) i++;
                tokens.Add(new Token(TokenKind.Name, src[start..i], null, start));
            }
            else if (char.IsAsciiDigit(c))
            {
                while (i < src.Length && (char.IsAsciiDigit(src[i]) || src[i] == '_')) i++;
                bool isFloat = false;
                if (i + 1 < src.Length && src[i] == '.' && char.IsAsciiDigit(src[i + 1]))
                {
                    isFloat = true;
                    i++;
                    while (i < src.Length && (char.IsAsciiDigit(src[i]) || src[i] == '_')) i++;
                }
                if (i < src.Length && src[i] is 'e' or 'E')
                {
                    int j = i + 1;
                    if (j < src.Length && src[j] is '+' or '-') j++;
                    if (j < src.Length && char.IsAsciiDigit(src[j]))
                    {
                        isFloat = true;
                        i = j;
                        while (i < src.Length && char.IsAsciiDigit(src[i])) i++;
                    }
                }
                string digits = src[start..i].Replace("_", "");
                if (isFloat)
                    tokens.Add(new Token(TokenKind.Float, digits, double.Parse(digits, CultureInfo.InvariantCulture), start));
                else if (long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long n))
                    tokens.Add(new Token(TokenKind.Integer, digits, n, start));
                else
                    throw map.Error($"integer literal '{digits}' is too large", start);
            }
            else if (c is '\'' or '"')
            {
                var sb = new StringBuilder();
                i++;
                while (true)
                {
                    if (i >= src.Length) throw map.Error("unterminated string literal", start);
                    char d = src[i];
                    if (d == c) { i++; break; }
                    if (d == '\\' && i + 1 < src.Length) { i = Escape(src, i, sb); continue; }
                    sb.Append(d);
                    i++;
                }
                tokens.Add(new Token(TokenKind.String, src[start..i], sb.ToString(), start));
            }
            else
            {
                string? op = null;
                foreach (var o in Operators)
                    if (string.CompareOrdinal(src, i, o, 0, o.Length) == 0) { op = o; break; }
                if (op is null) throw map.Error($"unexpected character '{c}'", i);
                if (op is "(" or "[" or "{") depth++;
                else if (op is ")" or "]" or "}") depth = Math.Max(0, depth - 1);
                i += op.Length;
                tokens.Add(new Token(TokenKind.Operator, op, null, start));
            }
        }
    }

    /// <summary>Python's unicode-escape decoding of one escape sequence; unknown escapes keep the backslash.</summary>
    static int Escape(string src, int i, StringBuilder sb)
    {
        char e = src[i + 1];
        switch (e)
        {
            case 'n': sb.Append('\n'); return i + 2;
            case 't': sb.Append('\t'); return i + 2;
            case 'r': sb.Append('\r'); return i + 2;
            case '\\': sb.Append('\\'); return i + 2;
            case '\'': sb.Append('\''); return i + 2;
            case '"': sb.Append('"'); return i + 2;
            case 'a': sb.Append('\a'); return i + 2;
            case 'b': sb.Append('\b'); return i + 2;
            case 'f': sb.Append('\f'); return i + 2;
            case 'v': sb.Append('\v'); return i + 2;
            case '\n': return i + 2;
            case 'x': case 'u': case 'U':
                int len = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                if (i + 2 + len <= src.Length && int.TryParse(src.AsSpan(i + 2, len), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int cp)
                    && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF))
                {
                    sb.Append(char.ConvertFromUtf32(cp));
                    return i + 2 + len;
                }
                break;
            default:
                if (e is >= '0' and <= '7')
                {
                    int j = i + 1, v = 0;
                    while (j < src.Length && j < i + 4 && src[j] is >= '0' and <= '7') v = v * 8 + (src[j++] - '0');
                    sb.Append((char)v);
                    return j;
                }
                break;
        }
        sb.Append('\\');
        return i + 1;
    }
}
