using System.Text;

namespace Llava.Text;

/// <summary>
/// UTF-8 decoding with SentencePiece's error handling: every byte that does not start a valid
/// character becomes one U+FFFD (unlike .NET's decoder, which replaces maximal invalid subparts).
/// </summary>
internal static class Utf8Text
{
    static bool IsTrail(byte b) => (b & 0xC0) == 0x80;
    static bool IsValidCodePoint(int c) => c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF);

    /// <summary>Decodes one character; returns -1 (consumed = 1) when the bytes at the start are invalid.</summary>
    public static int DecodeOne(ReadOnlySpan<byte> b, out int consumed)
    {
        consumed = 1;
        byte b0 = b[0];
        if (b0 < 0x80) return b0;
        if (b.Length >= 2 && (b0 & 0xE0) == 0xC0)
        {
            int cp = ((b0 & 0x1F) << 6) | (b[1] & 0x3F);
            if (IsTrail(b[1]) && cp >= 0x80 && IsValidCodePoint(cp)) { consumed = 2; return cp; }
        }
        else if (b.Length >= 3 && (b0 & 0xF0) == 0xE0)
        {
            int cp = ((b0 & 0x0F) << 12) | ((b[1] & 0x3F) << 6) | (b[2] & 0x3F);
            if (IsTrail(b[1]) && IsTrail(b[2]) && cp >= 0x800 && IsValidCodePoint(cp)) { consumed = 3; return cp; }
        }
        else if (b.Length >= 4 && (b0 & 0xF8) == 0xF0)
        {
            int cp = ((b0 & 0x07) << 18) | ((b[1] & 0x3F) << 12) | ((b[2] & 0x3F) << 6) | (b[3] & 0x3F);
            if (IsTrail(b[1]) && IsTrail(b[2]) && IsTrail(b[3]) && cp >= 0x10000 && IsValidCodePoint(cp)) { consumed = 4; return cp; }
        }
        return -1;
    }

    /// <summary>Appends the decoded bytes, one U+FFFD per invalid byte.</summary>
    public static void AppendDecoded(ReadOnlySpan<byte> bytes, StringBuilder sb)
    {
        while (!bytes.IsEmpty)
        {
            int cp = DecodeOne(bytes, out int consumed);
            if (cp < 0) sb.Append('\uFFFD');
            else if (cp < 0x10000) sb.Append((char)cp);
            else sb.Append(char.ConvertFromUtf32(cp));
            bytes = bytes[consumed..];
        }
    }

    /// <summary>
    /// True when <paramref name="b"/> is shorter than one character but could still become a valid
    /// character once more bytes arrive (a streaming decoder must then wait).
    /// </summary>
    public static bool IsIncompletePrefix(ReadOnlySpan<byte> b)
    {
        if (b.IsEmpty) return false;
        byte b0 = b[0];
        int need;
        if (b0 >= 0xC2 && b0 <= 0xDF) need = 2;
        else if (b0 >= 0xE0 && b0 <= 0xEF) need = 3;
        else if (b0 >= 0xF0 && b0 <= 0xF4) need = 4;
        else return false;
        if (b.Length >= need) return false;
        for (int i = 1; i < b.Length; i++)
            if (!IsTrail(b[i])) return false;
        if (b.Length >= 2)
        {
            byte b1 = b[1];
            if (b0 == 0xE0 && b1 < 0xA0) return false;   // overlong
            if (b0 == 0xED && b1 > 0x9F) return false;   // surrogate
            if (b0 == 0xF0 && b1 < 0x90) return false;   // overlong
            if (b0 == 0xF4 && b1 > 0x8F) return false;   // above U+10FFFF
        }
        return true;
    }
}
