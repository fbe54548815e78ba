using System.Text;

namespace Llava.Text;

/// <summary>
/// Reproduces Hugging Face's slow <c>LlamaTokenizer</c> (transformers 4.45) on top of a SentencePiece BPE
/// model: added/special tokens are split out of the text first and never merged, the rest is encoded
/// with the "▁" prefix handling of <c>legacy=false</c> (or the older <c>legacy=true</c> behaviour), and
/// decoding follows <c>PreTrainedTokenizer._decode</c>. Immutable; safe for concurrent use.
/// </summary>
public sealed class LlamaTokenizer
{
    /// <summary>Placeholder id LLaVA's <c>tokenizer_image_token</c> puts where the image goes.</summary>
    public const int LlavaImageTokenIndex = -200;
    /// <summary>The image placeholder text used in LLaVA prompts.</summary>
    public const string ImageToken = "<image>";

    readonly Dictionary<string, AddedToken> addedByContent = new(StringComparer.Ordinal);
    readonly Dictionary<int, AddedToken> addedById = new();
    readonly Dictionary<char, AddedToken[]> addedByFirstChar;
    readonly HashSet<string> specialTokens;
    readonly HashSet<int> specialIds;
    readonly HashSet<string> legacyAddedTokens;
    readonly string unkText;
    readonly int unkTokenLength;
    readonly int spaceId;

    public SentencePieceModel Model { get; }
    public LlamaTokenizerOptions Options { get; }
    public int BosId { get; }
    public int EosId { get; }
    public int UnkId { get; }
    /// <summary>Id of the pad token, when the checkpoint defines one.</summary>
    public int? PadId { get; }
    /// <summary>Number of ids the tokenizer knows (SentencePiece pieces plus added tokens; <c>len(tokenizer)</c>).</summary>
    public int VocabSize { get; }
    /// <summary>Hugging Face <c>all_special_tokens</c>.</summary>
    public IReadOnlyCollection<string> SpecialTokens => specialTokens;
    public IReadOnlyCollection<AddedToken> AddedTokens => addedById.Values;

    public LlamaTokenizer(SentencePieceModel model, LlamaTokenizerOptions? options = null)
    {
        Model = model;
        Options = options ?? new LlamaTokenizerOptions();

        int nextId = Math.Max(model.Count, Options.AddedTokens.Count == 0 ? 0 : Options.AddedTokens.Max(t => t.Id) + 1);
        foreach (var t in Options.AddedTokens) Register(t);
        // Like transformers, every special token becomes an added token (reusing its piece id when it has one).
        foreach (var s in Options.SpecialTokenStrings())
            if (!addedByContent.ContainsKey(s))
                Register(new AddedToken(model.TryPieceToId(s) ?? nextId++, s, Special: true));

        addedByFirstChar = addedByContent.Values.Where(t => t.Content.Length > 0)
            .GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());

        specialTokens = Options.SpecialTokenStrings().ToHashSet(StringComparer.Ordinal);
        specialIds = specialTokens.Select(TokenToId).OfType<int>().ToHashSet();
        // transformers' "legacy_added_tokens": non-special added tokens plus additional special tokens outside
        // the SentencePiece vocabulary; _decode keeps them apart and joins everything with spaces.
        legacyAddedTokens = addedByContent.Keys.Where(k => !specialTokens.Contains(k))
            .Concat(Options.AdditionalSpecialTokens.Where(k => TokenToId(k) is int id && id >= model.Count))
            .ToHashSet(StringComparer.Ordinal);

        UnkId = Options.UnkToken is { } u && TokenToId(u) is int uid ? uid : model.UnkId;
        BosId = Options.BosToken is { } b && TokenToId(b) is int bid ? bid : model.BosId;
        EosId = Options.EosToken is { } e && TokenToId(e) is int eid ? eid : model.EosId;
        PadId = Options.PadToken is { } p ? TokenToId(p) : null;
        VocabSize = Math.Max(model.Count, addedById.Count == 0 ? 0 : addedById.Keys.Max() + 1);

        unkText = Options.UnkToken ?? model.IdToPiece(model.UnkId);
        var unkIds = new List<int>();
        model.EncodeNormalized(model.Normalize(unkText, addDummyPrefix: false), unkIds);
        unkTokenLength = unkIds.Count;
        spaceId = model.TryPieceToId(SentencePieceModel.SpaceSymbol.ToString()) ?? -1;

        void Register(AddedToken t)
        {
            addedByContent[t.Content] = t;
            addedById[t.Id] = t;
        }
    }

    /// <summary>Loads <c>tokenizer.model</c> and the Hugging Face tokenizer JSON files found in <paramref name="dir"/>.</summary>
    public static LlamaTokenizer FromDirectory(string dir)
    {
        var modelPath = Path.Combine(dir, "tokenizer.model");
        if (!File.Exists(modelPath)) throw new FileNotFoundException("tokenizer.model not found", modelPath);
        return new LlamaTokenizer(SentencePieceModel.Load(modelPath), LlamaTokenizerOptions.FromDirectory(dir));
    }

    /// <summary>
    /// A copy with more added tokens, as <c>tokenizer.add_tokens([...], special_tokens=True)</c>: tokens not yet known get
    /// the next free ids (LLaVA adds &lt;im_patch&gt;, &lt;im_start&gt;, &lt;im_end&gt; this way after loading).
    /// </summary>
    public LlamaTokenizer WithAddedTokens(params string[] tokens)
    {
        var added = Options.AddedTokens.ToList();
        int next = VocabSize;
        foreach (var t in tokens)
            if (TokenToId(t) is null && added.All(a => a.Content != t))
                added.Add(new AddedToken(next++, t, Special: true));
        if (added.Count == Options.AddedTokens.Count) return this;
        // transformers also lists tokens added with special_tokens=True among additional_special_tokens.
        var extra = added.Skip(Options.AddedTokens.Count).Select(a => a.Content);
        return new LlamaTokenizer(Model, Options with { AddedTokens = added, AdditionalSpecialTokens = [.. Options.AdditionalSpecialTokens, .. extra] });
    }

    /// <summary>Id of a token string (added token or SentencePiece piece), or null if unknown.</summary>
    public int? TokenToId(string token) =>
        addedByContent.TryGetValue(token, out var t) ? t.Id : Model.TryPieceToId(token);

    /// <summary>Token string of an id (added-token content or SentencePiece piece).</summary>
    public string IdToToken(int id) =>
        IdToTokenOrNull(id) ?? throw new ArgumentOutOfRangeException(nameof(id), id, "Unknown token id.");

    internal string? IdToTokenOrNull(int id) =>
        addedById.TryGetValue(id, out var t) ? t.Content : (uint)id < (uint)Model.Count ? Model.IdToPiece(id) : null;

    /// <summary>True for ids of <see cref="SpecialTokens"/> (what <c>skip_special_tokens</c> drops).</summary>
    public bool IsSpecialId(int id) => specialIds.Contains(id);
    internal bool IsSpecialToken(string token) => specialTokens.Contains(token);
    internal bool IsLegacyAddedToken(string token) => legacyAddedTokens.Contains(token);

    /// <summary>Whether SentencePiece decoding drops a leading space (the processor HF uses in this mode).</summary>
    internal bool SentencePieceStripsLeadingSpace =>
        (Options.Legacy && Model.AddDummyPrefix) || Model.RemoveExtraWhitespaces;

    /// <summary>
    /// Encodes like <c>tokenizer(text).input_ids</c>: optional BOS, then the tokens of <paramref name="text"/>
    /// (added tokens split out first), then optional EOS.
    /// </summary>
    public int[] Encode(string text, bool addBos = true, bool addEos = false)
    {
        var ids = new List<int>(text.Length / 3 + 4);
        if (addBos) ids.Add(BosId);
        EncodeTo(text, ids);
        if (addEos) ids.Add(EosId);
        return ids.ToArray();
    }

    /// <summary>The token strings of <paramref name="text"/> (<c>tokenizer.tokenize</c>), byte pieces as <c>&lt;0xNN&gt;</c>.</summary>
    public string[] Tokenize(string text) => Encode(text, addBos: false).Select(IdToToken).ToArray();

    /// <summary>Appends the ids of <paramref name="text"/> without BOS/EOS.</summary>
    public void EncodeTo(string text, List<int> ids)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0) return;
        string t = text;
        if (!Options.Legacy)
        {
            t = t.Replace(SentencePieceModel.SpaceSymbol, ' ');
            if (Options.AddPrefixSpace) t = SentencePieceModel.SpaceSymbol + t;
        }
        var parts = SplitOnAddedTokens(t);
        ApplyAddedTokenStripping(parts);

        int first = ids.Count;
        foreach (var part in parts)
        {
            if (part.Length == 0) continue;
            if (addedByContent.TryGetValue(part, out var added)) ids.Add(added.Id);
            else EncodeChunk(part, ids);
        }
        // Non-legacy: the "▁" prepended to the text is dropped when a special token follows it directly.
        if (!Options.Legacy && ids.Count - first > 1 && ids[first] == spaceId
            && IdToTokenOrNull(ids[first + 1]) is { } second && specialTokens.Contains(second))
            ids.RemoveAt(first);
    }

    /// <summary>LlamaTokenizer._tokenize for one piece of text without added tokens.</summary>
    void EncodeChunk(string chunk, List<int> ids)
    {
        if (Options.Legacy)
        {
            Model.EncodeNormalized(Model.Normalize(chunk), ids);
            return;
        }
        if (chunk[0] != SentencePieceModel.SpaceSymbol && chunk[0] != ' ')
        {
            Model.EncodeNormalized(Model.Normalize(chunk, addDummyPrefix: false), ids);
            return;
        }
        // Encode "<unk>" + chunk and drop the unk pieces so SentencePiece keeps the leading space as is.
        var tmp = new List<int>(chunk.Length / 2 + unkTokenLength + 2);
        Model.EncodeNormalized(Model.Normalize(unkText + chunk, addDummyPrefix: false), tmp);
        int skip = tmp.Count >= unkTokenLength ? unkTokenLength : 0;
        for (int i = skip; i < tmp.Count; i++) ids.Add(tmp[i]);
    }

    /// <summary>Splits text around added tokens: earliest match first, longest token on ties (HF's Trie.split).</summary>
    List<string> SplitOnAddedTokens(string t)
    {
        var parts = new List<string>();
        int last = 0, i = 0;
        while (i < t.Length)
        {
            AddedToken? match = null;
            if (addedByFirstChar.TryGetValue(t[i], out var candidates))
                foreach (var c in candidates)
                    if (t.AsSpan(i).StartsWith(c.Content, StringComparison.Ordinal)) { match = c; break; }
            if (match == null) { i++; continue; }
            if (i > last) parts.Add(t[last..i]);
            parts.Add(match.Content);
            i += match.Content.Length;
            last = i;
        }
        if (last < t.Length) parts.Add(t[last..]);
        return parts;
    }

    /// <summary>The lstrip/rstrip/single_word handling of <c>PreTrainedTokenizer.tokenize</c>.</summary>
    void ApplyAddedTokenStripping(List<string> parts)
    {
        for (int i = 0; i < parts.Count; i++)
        {
            var token = parts[i];
            if (!addedByContent.TryGetValue(token, out var tok)) continue;
            string? left = i > 0 ? parts[i - 1] : null;
            string? right = i < parts.Count - 1 ? parts[i + 1] : null;
            if (tok.RStrip && !string.IsNullOrEmpty(right)) parts[i + 1] = PythonText.LStrip(right);
            if (tok.LStrip && !string.IsNullOrEmpty(left)) parts[i - 1] = PythonText.RStrip(left);
            if (tok.SingleWord && !string.IsNullOrEmpty(left) && left[^1] != ' ')
            {
                parts[i - 1] += token;
                parts[i] = "";
            }
            else if (tok.SingleWord && !string.IsNullOrEmpty(right) && right[0] != ' ')
            {
                parts[i] += right;
                parts[i + 1] = "";
            }
        }
    }

    /// <summary>
    /// Decodes like <c>tokenizer.decode(ids, skip_special_tokens=...)</c> in transformers 4.45. Ids the tokenizer
    /// does not know (e.g. the padded rows 32002..32063 of the HF LLaVA embedding) produce no text.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        var subTexts = new List<string>();
        var group = new List<string>();
        foreach (int id in ids)
        {
            if (skipSpecialTokens && specialIds.Contains(id)) continue;
            var tok = IdToTokenOrNull(id);
            if (tok == null) continue;
            if (legacyAddedTokens.Contains(tok))
            {
                if (group.Count > 0)
                {
                    var s = ConvertTokensToString(group);
                    if (s.Length > 0) subTexts.Add(s);
                    group.Clear();
                }
                subTexts.Add(tok);
            }
            else group.Add(tok);
        }
        if (group.Count > 0) subTexts.Add(ConvertTokensToString(group));
        return string.Join(" ", subTexts);
    }

    /// <summary>LlamaTokenizer.convert_tokens_to_string.</summary>
    string ConvertTokensToString(List<string> tokens)
    {
        if (Options.AddPrefixSpace && tokens[0].Length > 0 && tokens[0][0] == SentencePieceModel.SpaceSymbol)
            tokens[0] = tokens[0][1..];
        var sb = new StringBuilder();
        var current = new List<string>();
        bool prevIsSpecial = false;
        bool strip = SentencePieceStripsLeadingSpace;
        for (int i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i];
            if (specialTokens.Contains(token))
            {
                if (!prevIsSpecial && i != 0 && Options.Legacy) sb.Append(' ');
                sb.Append(Model.DecodePieces(current, strip)).Append(token);
                prevIsSpecial = true;
                current.Clear();
            }
            else
            {
                if (prevIsSpecial && i == 1 && Options.AddPrefixSpace && !token.StartsWith(SentencePieceModel.SpaceSymbol))
                    sb.Append(' ');
                current.Add(token);
                prevIsSpecial = false;
            }
        }
        sb.Append(Model.DecodePieces(current, strip));
        return sb.ToString();
    }

    /// <summary>
    /// LLaVA's <c>tokenizer_image_token</c> (llava/mm_utils.py): split the prompt on "&lt;image&gt;", tokenize
    /// every chunk on its own (with BOS as configured), keep the first chunk's BOS, drop the BOS of the others
    /// and put <paramref name="imageTokenId"/> between chunks. Because each chunk after an image is tokenized
    /// as a fresh text, it starts with an extra "▁" (29871) that the Hugging Face processor does not produce.
    /// </summary>
    public int[] TokenizerImageToken(string prompt, int imageTokenId = LlavaImageTokenIndex)
    {
        var chunks = prompt.Split(ImageToken).Select(c => Encode(c, Options.AddBosToken, Options.AddEosToken)).ToList();
        var result = new List<int>();
        int offset = 0;
        if (chunks.Count > 0 && chunks[0].Length > 0 && chunks[0][0] == BosId)
        {
            offset = 1;
            result.Add(chunks[0][0]);
        }
        // insert_separator(chunks, [image] * (offset + 1)), then every element loses its first `offset` ids.
        for (int i = 0; i < chunks.Count; i++)
        {
            if (i > 0) result.Add(imageTokenId);
            result.AddRange(chunks[i].Skip(offset));
        }
        return result.ToArray();
    }

    /// <summary>Creates an incremental detokenizer for generated ids.</summary>
    public StreamingDecoder CreateStreamingDecoder(bool skipSpecialTokens = true) => new(this, skipSpecialTokens);
}
