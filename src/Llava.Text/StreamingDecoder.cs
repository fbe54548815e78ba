using System.Runtime.InteropServices;
using System.Text;

namespace Llava.Text;

/// <summary>
/// Incremental detokenizer: <see cref="Push"/> takes generated ids one at a time and returns only the newly
/// completed text. The concatenation of everything returned (plus <see cref="Flush"/> at the end) equals
/// <see cref="LlamaTokenizer.Decode"/> of all ids, and after every push it is a prefix of that decode.
/// Byte-fallback pieces are held until they form a whole UTF-8 character. Each push costs O(piece length).
/// Not thread-safe (one instance per generation stream).
/// </summary>
public sealed class StreamingDecoder
{
    readonly LlamaTokenizer tok;
    readonly SentencePieceModel model;
    readonly bool skipSpecial;
    readonly bool stripSegmentStart;
    // Legacy mode inserts a space in front of already decoded text when a special token follows, so the
    // text of the current segment is held back until the segment ends in that case.
    readonly bool holdSegments;

    readonly List<byte> pendingBytes = new();
    readonly StringBuilder held = new();

    // Decode state (mirrors LlamaTokenizer.Decode / ConvertTokensToString / SentencePieceModel.DecodePieces).
    bool anyRetained;      // a sub-text precedes the open group
    bool groupOpen;
    int groupIndex;        // index of the next token inside the group
    bool groupHasText;
    bool prevIsSpecial;
    bool segIsBosWs, segBosWsSeen, segHasText;

    internal StreamingDecoder(LlamaTokenizer tokenizer, bool skipSpecialTokens)
    {
        tok = tokenizer;
        model = tokenizer.Model;
        skipSpecial = skipSpecialTokens;
        stripSegmentStart = tokenizer.SentencePieceStripsLeadingSpace;
        holdSegments = tokenizer.Options.Legacy && !skipSpecialTokens;
    }

    /// <summary>Adds one id and returns the text it completes (possibly empty).</summary>
    public string Push(int id)
    {
        if (skipSpecial && tok.IsSpecialId(id)) return "";
        var token = tok.IdToTokenOrNull(id);
        if (token == null) return "";
        var output = new StringBuilder();

        if (tok.IsLegacyAddedToken(token))
        {
            // A separate sub-text: close the group, then join with a single space.
            bool separator = anyRetained;
            if (groupOpen)
            {
                CloseSegment(output);
                // An empty group is dropped; the space emitted when it opened serves this token.
                separator = groupHasText;
                groupOpen = false;
            }
            if (separator) output.Append(' ');
            output.Append(token);
            anyRetained = true;
            return output.ToString();
        }

        if (!groupOpen)
        {
            if (anyRetained) output.Append(' ');
            groupOpen = true;
            anyRetained = true;
            groupIndex = 0;
            groupHasText = false;
            prevIsSpecial = false;
            StartSegment();
        }

        if (groupIndex == 0 && tok.Options.AddPrefixSpace && token.Length > 0 && token[0] == SentencePieceModel.SpaceSymbol)
            token = token[1..];

        if (tok.IsSpecialToken(token))
        {
            FlushBytes(output, final: true);
            if (!prevIsSpecial && groupIndex != 0 && tok.Options.Legacy) AppendGroupText(output, " ");
            ReleaseHeld(output);
            AppendGroupText(output, token);
            prevIsSpecial = true;
            StartSegment();
        }
        else
        {
            if (prevIsSpecial && groupIndex == 1 && tok.Options.AddPrefixSpace && !token.StartsWith(SentencePieceModel.SpaceSymbol))
                AppendGroupText(output, " ");
            AppendPiece(token, output);
            prevIsSpecial = false;
        }
        groupIndex++;
        return output.ToString();
    }

    /// <summary>Ends the stream: emits held text and any incomplete UTF-8 bytes (as U+FFFD, like Decode).</summary>
    public string Flush()
    {
        var output = new StringBuilder();
        if (groupOpen) CloseSegment(output);
        return output.ToString();
    }

    /// <summary>Forgets all state so the instance can decode a new sequence.</summary>
    public void Reset()
    {
        pendingBytes.Clear();
        held.Clear();
        anyRetained = groupOpen = groupHasText = prevIsSpecial = false;
        groupIndex = 0;
    }

    void StartSegment()
    {
        segIsBosWs = true;
        segBosWsSeen = false;
        segHasText = false;
    }

    void CloseSegment(StringBuilder output)
    {
        FlushBytes(output, final: true);
        ReleaseHeld(output);
    }

    /// <summary>One SentencePiece piece of the current segment (DecodePieces, incrementally).</summary>
    void AppendPiece(string piece, StringBuilder output)
    {
        int? found = model.TryPieceToId(piece);
        int id = found ?? model.UnkId;
        if (found.HasValue && model.IsByte(id))
        {
            pendingBytes.Add((byte)model.ByteValue(id));
            FlushBytes(output, final: false);
            return;
        }
        FlushBytes(output, final: true);
        if (segBosWsSeen || segHasText) segIsBosWs = false;
        var sb = new StringBuilder();
        segBosWsSeen = model.AppendSurface(piece, id, stripSegmentStart && segIsBosWs, sb);
        AppendSegmentText(output, sb.ToString());
    }

    /// <summary>Decodes the pending bytes; unless <paramref name="final"/>, keeps a trailing incomplete character.</summary>
    void FlushBytes(StringBuilder output, bool final)
    {
        if (pendingBytes.Count == 0) return;
        var bytes = CollectionsMarshal.AsSpan(pendingBytes);
        var sb = new StringBuilder();
        int pos = 0;
        while (pos < bytes.Length)
        {
            var rest = bytes[pos..];
            if (!final && Utf8Text.IsIncompletePrefix(rest)) break;
            int cp = Utf8Text.DecodeOne(rest, out int consumed);
            if (cp < 0) sb.Append('\uFFFD');
            else sb.Append(char.ConvertFromUtf32(cp));
            pos += consumed;
        }
        pendingBytes.RemoveRange(0, pos);
        if (sb.Length > 0) AppendSegmentText(output, sb.ToString());
    }

    void AppendSegmentText(StringBuilder output, string text)
    {
        if (text.Length == 0) return;
        segHasText = true;
        groupHasText = true;
        if (holdSegments) held.Append(text);
        else output.Append(text);
    }

    void AppendGroupText(StringBuilder output, string text)
    {
        if (text.Length == 0) return;
        groupHasText = true;
        output.Append(text);
    }

    void ReleaseHeld(StringBuilder output)
    {
        if (held.Length == 0) return;
        output.Append(held);
        held.Clear();
    }
}
