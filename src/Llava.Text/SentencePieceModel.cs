using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Llava.Text;

/// <summary>
/// A SentencePiece BPE model read from a <c>tokenizer.model</c> ModelProto. Reproduces the
/// reference implementation's normalization (identity rules + whitespace handling), score-ordered
/// BPE merging, byte fallback and decoding. Immutable and thread-safe.
/// </summary>
public sealed class SentencePieceModel
{
    /// <summary>The meta symbol SentencePiece uses for a space.</summary>
    public const char SpaceSymbol = '\u2581';

    readonly string[] pieces;
    readonly float[] scores;
    readonly PieceType[] types;
    readonly int[] byteValueOfId;            // byte value for BYTE pieces, -1 otherwise
    readonly int[] idOfByte = new int[256];  // id of <0xNN>, -1 when absent
    readonly Dictionary<string, int> mergeable;   // NORMAL, USER_DEFINED, UNUSED pieces (what BPE may form)
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> mergeableLookup;
    readonly Dictionary<string, int> reserved;    // CONTROL, UNKNOWN, BYTE pieces
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> reservedLookup;
    readonly string[] userDefined;                // longest first, matched as unbreakable symbols
    readonly bool hasUnused;

    /// <summary>Number of pieces in the model.</summary>
    public int Count => pieces.Length;
    public int UnkId { get; }
    /// <summary>BOS id from the trainer spec, or -1.</summary>
    public int BosId { get; }
    /// <summary>EOS id from the trainer spec, or -1.</summary>
    public int EosId { get; }
    /// <summary>PAD id from the trainer spec, or -1 (LLaMA has none).</summary>
    public int PadId { get; }
    public bool ByteFallback { get; }
    /// <summary>NormalizerSpec.add_dummy_prefix as stored in the model.</summary>
    public bool AddDummyPrefix { get; }
    public bool RemoveExtraWhitespaces { get; }
    public bool EscapeWhitespaces { get; }
    /// <summary>Text the decoder emits for the unknown piece (default " ⁇ ").</summary>
    public string UnkSurface { get; }

    SentencePieceModel(List<(string Piece, float Score, PieceType Type)> list, int unk, int bos, int eos, int pad,
        bool byteFallback, bool addDummyPrefix, bool removeExtraWs, bool escapeWs, string unkSurface)
    {
        int n = list.Count;
        pieces = new string[n];
        scores = new float[n];
        types = new PieceType[n];
        byteValueOfId = new int[n];
        Array.Fill(idOfByte, -1);
        mergeable = new Dictionary<string, int>(n, StringComparer.Ordinal);
        reserved = new Dictionary<string, int>(StringComparer.Ordinal);
        var user = new List<string>();
        for (int i = 0; i < n; i++)
        {
            var (piece, score, type) = list[i];
            pieces[i] = piece;
            scores[i] = score;
            types[i] = type;
            byteValueOfId[i] = -1;
            if (type is PieceType.Control or PieceType.Unknown or PieceType.Byte)
            {
                reserved.TryAdd(piece, i);
                if (type == PieceType.Byte)
                {
                    int b = ParseBytePiece(piece);
                    if (b < 0) throw new InvalidDataException($"Malformed byte piece '{piece}'.");
                    byteValueOfId[i] = b;
                    idOfByte[b] = i;
                }
            }
            else
            {
                mergeable.TryAdd(piece, i);
                if (type == PieceType.UserDefined) user.Add(piece);
                if (type == PieceType.Unused) hasUnused = true;
            }
        }
        mergeableLookup = mergeable.GetAlternateLookup<ReadOnlySpan<char>>();
        reservedLookup = reserved.GetAlternateLookup<ReadOnlySpan<char>>();
        userDefined = user.OrderByDescending(s => s.Length).ToArray();
        if (unk < 0 || unk >= n || types[unk] != PieceType.Unknown)
            throw new InvalidDataException("The model has no valid unknown piece.");
        UnkId = unk;
        BosId = bos;
        EosId = eos;
        PadId = pad;
        ByteFallback = byteFallback;
        AddDummyPrefix = addDummyPrefix;
        RemoveExtraWhitespaces = removeExtraWs;
        EscapeWhitespaces = escapeWs;
        UnkSurface = unkSurface;
    }

    /// <summary>
    /// A model from its piece table, as llama.cpp stores it in GGUF metadata (tokenizer.ggml.tokens / scores /
    /// token_type, whose type numbers are SentencePiece's). Defaults are LLaMA's normalizer settings.
    /// </summary>
    public static SentencePieceModel FromPieces(IReadOnlyList<(string Piece, float Score, PieceType Type)> pieces, int unk, int bos, int eos, int pad = -1,
        bool byteFallback = true, bool addDummyPrefix = true, bool removeExtraWhitespaces = false, bool escapeWhitespaces = true, string unkSurface = " \u2047 ")
    {
        if (pieces.Count == 0) throw new InvalidDataException("The tokenizer has no pieces.");
        return new SentencePieceModel(pieces.ToList(), unk, bos, eos, pad, byteFallback, addDummyPrefix, removeExtraWhitespaces, escapeWhitespaces, unkSurface);
    }

    /// <summary>Loads a serialized ModelProto from a file.</summary>
    public static SentencePieceModel Load(string path) => FromBytes(File.ReadAllBytes(path));

    /// <summary>Parses a serialized SentencePiece ModelProto (only BPE models are supported).</summary>
    public static SentencePieceModel FromBytes(ReadOnlySpan<byte> data)
    {
        var list = new List<(string, float, PieceType)>();
        int modelType = 1, unk = 0, bos = 1, eos = 2, pad = -1;
        bool byteFallback = false, addDummyPrefix = true, removeExtraWs = true, escapeWs = true;
        string unkSurface = " \u2047 ";
        var r = new ProtoReader(data);
        while (r.TryReadTag(out int field, out int wire))
        {
            if (field == 1 && wire == 2) list.Add(ReadPiece(r.ReadBytes()));
            else if (field == 2 && wire == 2)
            {
                var t = new ProtoReader(r.ReadBytes());
                while (t.TryReadTag(out int f, out int w))
                {
                    switch (f)
                    {
                        case 3 when w == 0: modelType = (int)t.ReadVarint(); break;
                        case 35 when w == 0: byteFallback = t.ReadVarint() != 0; break;
                        case 40 when w == 0: unk = (int)(long)t.ReadVarint(); break;
                        case 41 when w == 0: bos = (int)(long)t.ReadVarint(); break;
                        case 42 when w == 0: eos = (int)(long)t.ReadVarint(); break;
                        case 43 when w == 0: pad = (int)(long)t.ReadVarint(); break;
                        case 44 when w == 2: unkSurface = t.ReadString(); break;
                        default: t.Skip(w); break;
                    }
                }
            }
            else if (field == 3 && wire == 2)
            {
                var t = new ProtoReader(r.ReadBytes());
                while (t.TryReadTag(out int f, out int w))
                {
                    switch (f)
                    {
                        case 2 when w == 2:
                            if (t.ReadBytes().Length > 0)
                                throw new NotSupportedException("SentencePiece models with a precompiled normalization charsmap are not supported (LLaMA uses the identity normalizer).");
                            break;
                        case 3 when w == 0: addDummyPrefix = t.ReadVarint() != 0; break;
                        case 4 when w == 0: removeExtraWs = t.ReadVarint() != 0; break;
                        case 5 when w == 0: escapeWs = t.ReadVarint() != 0; break;
                        default: t.Skip(w); break;
                    }
                }
            }
            else r.Skip(wire);
        }
        if (modelType != 2)
            throw new NotSupportedException($"Only BPE SentencePiece models are supported (model_type={modelType}).");
        if (list.Count == 0) throw new InvalidDataException("The SentencePiece model has no pieces.");
        return new SentencePieceModel(list, unk, bos, eos, pad, byteFallback, addDummyPrefix, removeExtraWs, escapeWs, unkSurface);
    }

    static (string, float, PieceType) ReadPiece(ReadOnlySpan<byte> msg)
    {
        string piece = "";
        float score = 0;
        var type = PieceType.Normal;
        var r = new ProtoReader(msg);
        while (r.TryReadTag(out int f, out int w))
        {
            if (f == 1 && w == 2) piece = r.ReadString();
            else if (f == 2 && w == 5) score = r.ReadFloat();
            else if (f == 3 && w == 0) type = (PieceType)(int)r.ReadVarint();
            else r.Skip(w);
        }
        return (piece, score, type);
    }

    static int ParseBytePiece(string piece)
    {
        if (piece.Length != 6 || !piece.StartsWith("<0x", StringComparison.Ordinal) || piece[5] != '>') return -1;
        return int.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out int v) ? v : -1;
    }

    public string IdToPiece(int id) => pieces[id];
    public float Score(int id) => scores[id];
    public PieceType TypeOf(int id) => types[id];
    public bool IsByte(int id) => (uint)id < (uint)pieces.Length && byteValueOfId[id] >= 0;
    /// <summary>The byte value of a <c>&lt;0xNN&gt;</c> piece, or -1.</summary>
    public int ByteValue(int id) => (uint)id < (uint)pieces.Length ? byteValueOfId[id] : -1;
    /// <summary>Id of the byte piece for <paramref name="b"/>, or -1.</summary>
    public int ByteToId(byte b) => idOfByte[b];

    /// <summary>SentencePiece's PieceToId: reserved pieces first, then ordinary ones, else the unknown id.</summary>
    public int PieceToId(ReadOnlySpan<char> piece)
    {
        if (reservedLookup.TryGetValue(piece, out int id)) return id;
        if (mergeableLookup.TryGetValue(piece, out id)) return id;
        return UnkId;
    }

    /// <summary>Id of an exact piece string, or null when the model has no such piece.</summary>
    public int? TryPieceToId(ReadOnlySpan<char> piece)
    {
        if (reservedLookup.TryGetValue(piece, out int id)) return id;
        if (mergeableLookup.TryGetValue(piece, out id)) return id;
        return null;
    }

    /// <summary>
    /// Applies the model's normalizer: optional removal of extra spaces, the dummy "▁" prefix and
    /// space escaping. <paramref name="addDummyPrefix"/> overrides the model's setting (Hugging Face's
    /// non-legacy LlamaTokenizer turns it off).
    /// </summary>
    public string Normalize(ReadOnlySpan<char> text, bool? addDummyPrefix = null)
    {
        bool prefix = addDummyPrefix ?? AddDummyPrefix;
        var sb = new StringBuilder(text.Length + 1);
        if (RemoveExtraWhitespaces)
        {
            text = text.Trim(' ');
            if (text.IsEmpty) return "";
        }
        if (text.IsEmpty) return "";
        char space = EscapeWhitespaces ? SpaceSymbol : ' ';
        if (prefix) sb.Append(space);
        bool prevSpace = false;
        foreach (char c in text)
        {
            if (c == ' ')
            {
                if (RemoveExtraWhitespaces && prevSpace) continue;
                sb.Append(space);
                prevSpace = true;
            }
            else
            {
                sb.Append(c);
                prevSpace = false;
            }
        }
        return sb.ToString();
    }

    /// <summary>Normalizes and encodes <paramref name="text"/> to ids.</summary>
    public int[] Encode(string text, bool? addDummyPrefix = null)
    {
        var ids = new List<int>();
        EncodeNormalized(Normalize(text, addDummyPrefix), ids);
        return ids.ToArray();
    }

    /// <summary>Number of code points each symbol starts with; user-defined pieces are single frozen symbols.</summary>
    int MatchUserDefined(ReadOnlySpan<char> s)
    {
        foreach (var u in userDefined)
            if (s.StartsWith(u, StringComparison.Ordinal)) return u.Length;
        return 0;
    }

    /// <summary>
    /// BPE-encodes already normalized text and appends the ids to <paramref name="output"/>: start from
    /// characters, repeatedly merge the adjacent pair forming the highest-scoring piece (leftmost on ties),
    /// then map each symbol to its id, falling back to UTF-8 byte pieces for unknown symbols.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void EncodeNormalized(ReadOnlySpan<char> s, List<int> output)
    {
        if (s.IsEmpty) return;
        var sym = new BpeSymbols(s.Length, userDefined.Length > 0);
        int n = 0;
        for (int i = 0; i < s.Length;)
        {
            int m = sym.Freeze != null ? MatchUserDefined(s[i..]) : 0;
            if (m > 0) sym.Freeze![n] = true;
            else m = char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? 2 : 1;
            sym.Start[n] = i;
            sym.Len[n] = m;
            n++;
            i += m;
        }
        for (int i = 0; i < n; i++) { sym.Prev[i] = i - 1; sym.Next[i] = i + 1 < n ? i + 1 : -1; }

        var agenda = new BpeAgenda(2 * n);
        Dictionary<string, (string, string)>? revMerge = hasUnused ? new(StringComparer.Ordinal) : null;
        for (int i = 0; i + 1 < n; i++) AddPair(i, i + 1, s, ref sym, ref agenda, revMerge);

        while (agenda.TryPop(out var top))
        {
            int left = top.Left, right = top.Right;
            // Skip entries made stale by earlier merges.
            if (sym.Len[left] == 0 || sym.Len[right] == 0 || sym.Len[left] + sym.Len[right] != top.Size) continue;
            sym.Len[left] = top.Size;
            sym.Len[right] = 0;
            int after = sym.Next[right];
            sym.Next[left] = after;
            if (after >= 0) sym.Prev[after] = left;
            AddPair(sym.Prev[left], left, s, ref sym, ref agenda, revMerge);
            AddPair(left, after, s, ref sym, ref agenda, revMerge);
        }

        for (int i = 0; i >= 0 && i < n; i = sym.Next[i])
            Resegment(s.Slice(sym.Start[i], sym.Len[i]), output, revMerge);
    }

    /// <summary>Queues the merge of two adjacent symbols if their concatenation is a piece.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void AddPair(int left, int right, ReadOnlySpan<char> s, ref BpeSymbols sym, ref BpeAgenda agenda,
        Dictionary<string, (string, string)>? revMerge)
    {
        if (left < 0 || right < 0) return;
        if (sym.Freeze != null && (sym.Freeze[left] || sym.Freeze[right])) return;
        int size = sym.Len[left] + sym.Len[right];
        var piece = s.Slice(sym.Start[left], size);
        if (!mergeableLookup.TryGetValue(piece, out int id)) return;
        agenda.Push(scores[id], left, right, size);
        if (revMerge != null && types[id] == PieceType.Unused)
            revMerge[piece.ToString()] = (s.Slice(sym.Start[left], sym.Len[left]).ToString(), s.Slice(sym.Start[right], sym.Len[right]).ToString());
    }

    /// <summary>Emits one final symbol; unused pieces are split back into the pieces they were merged from.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void Resegment(ReadOnlySpan<char> w, List<int> output, Dictionary<string, (string, string)>? revMerge)
    {
        int id = PieceToId(w);
        if (revMerge != null && types[id] == PieceType.Unused && revMerge.TryGetValue(w.ToString(), out var parts))
        {
            Resegment(parts.Item1, output, revMerge);
            Resegment(parts.Item2, output, revMerge);
            return;
        }
        if (id == UnkId && types[id] == PieceType.Unknown && !w.SequenceEqual(pieces[UnkId]))
        {
            if (ByteFallback)
            {
                Span<byte> bytes = stackalloc byte[Encoding.UTF8.GetMaxByteCount(w.Length)];
                int count = Encoding.UTF8.GetBytes(w, bytes);
                foreach (byte b in bytes[..count])
                    output.Add(idOfByte[b] >= 0 ? idOfByte[b] : UnkId);
                return;
            }
            // Without byte fallback a run of unknown symbols becomes a single unknown id.
            if (output.Count > 0 && output[^1] == UnkId) return;
        }
        output.Add(id);
    }

    /// <summary>
    /// SentencePiece's decoder over piece strings: byte pieces are joined and decoded as UTF-8 (each
    /// invalid byte becomes U+FFFD), control pieces vanish, "▁" becomes a space, and while the output is
    /// still empty a leading "▁" is dropped when the model adds a dummy prefix (or <paramref name="stripLeadingSpace"/>).
    /// </summary>
    public string DecodePieces(IEnumerable<string> pieceStrings, bool? stripLeadingSpace = null)
    {
        bool strip = stripLeadingSpace ?? (AddDummyPrefix || RemoveExtraWhitespaces);
        var sb = new StringBuilder();
        var bytes = new List<byte>();
        bool isBosWs = true, bosWsSeen = false;
        foreach (var p in pieceStrings)
        {
            int? found = TryPieceToId(p);
            int id = found ?? UnkId;
            if (found.HasValue && byteValueOfId[id] >= 0) { bytes.Add((byte)byteValueOfId[id]); continue; }
            Utf8Text.AppendDecoded(CollectionsMarshal.AsSpan(bytes), sb);
            bytes.Clear();
            if (bosWsSeen || sb.Length > 0) isBosWs = false;
            bosWsSeen = AppendSurface(p, id, strip && isBosWs, sb);
        }
        Utf8Text.AppendDecoded(CollectionsMarshal.AsSpan(bytes), sb);
        return sb.ToString();
    }

    /// <summary>Decodes ids the way <c>SentencePieceProcessor.decode</c> does.</summary>
    public string Decode(IEnumerable<int> ids) => DecodePieces(ids.Select(id => pieces[id]));

    /// <summary>Appends the surface of one non-byte piece; returns true if a leading "▁" was consumed.</summary>
    internal bool AppendSurface(string piece, int id, bool stripLeading, StringBuilder sb)
    {
        var type = types[id];
        if (type == PieceType.Control) return false;
        if (type == PieceType.Unknown)
        {
            sb.Append(piece == pieces[id] ? UnkSurface : piece);
            return false;
        }
        var span = piece.AsSpan();
        bool consumed = false;
        if (stripLeading && span.Length > 0 && span[0] == SpaceSymbol)
        {
            span = span[1..];
            consumed = !RemoveExtraWhitespaces;
        }
        foreach (char c in span) sb.Append(c == SpaceSymbol ? ' ' : c);
        return consumed;
    }
}
