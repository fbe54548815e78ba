using Llava.Text;

namespace Llava.Training.Data;

/// <summary>Token ids and labels of one sample, as LLaVA's <c>preprocess</c> returns them.</summary>
/// <param name="InputIds">Token ids; the image placeholder is <see cref="LlavaPreprocessor.ImageTokenIndex"/> (-200).</param>
/// <param name="Labels">Same length; <see cref="LlavaPreprocessor.IgnoreIndex"/> (-100) where no loss is taken.</param>
/// <param name="TokenizationMismatch">LLaVA's "WARNING: tokenization mismatch" fired: every label is -100.</param>
/// <param name="MismatchMessage">LLaVA's message, e.g. "tokenization mismatch: 95 vs. 94.", or null.</param>
public sealed record TokenizedSample(int[] InputIds, int[] Labels, bool TokenizationMismatch = false, string? MismatchMessage = null)
{
    /// <summary>Number of labels that are not -100.</summary>
    public int SupervisedCount => Labels.Count(l => l != LlavaPreprocessor.IgnoreIndex);
}

/// <summary>A record LLaVA's preprocessing would reject (it fails an <c>assert</c> or a dict lookup there).</summary>
public sealed class DataFormatException(DataIssue issue, string message) : Exception(message)
{
    public DataIssue Issue { get; } = issue;
}

/// <summary>
/// LLaVA's text preprocessing (llava/train/train.py at c121f04): <c>preprocess_multimodal</c>, then
/// <c>preprocess</c> dispatching on the template to <c>preprocess_plain</c> (stage 1), <c>preprocess_v1</c>
/// (templates whose version starts with "v1": vicuna_v1, llava_v1, v1_mmtag) or <c>preprocess_llama_2</c>.
/// Image samples are tokenized with <see cref="LlamaTokenizer.TokenizerImageToken"/> as in LLaVA. Immutable and
/// thread-safe.
/// </summary>
public sealed class LlavaPreprocessor
{
    public const int IgnoreIndex = -100;
    public const int ImageTokenIndex = LlamaTokenizer.LlavaImageTokenIndex;
    public const string DefaultImageToken = "<image>";
    public const string DefaultImStartToken = "<im_start>";
    public const string DefaultImEndToken = "<im_end>";

    public LlamaTokenizer Tokenizer { get; }
    public LlavaDataOptions Options { get; }
    public ConversationTemplate Template => Options.Template;
    /// <summary>The pad id (<see cref="LlavaDataOptions.PadTokenId"/>, default the unk id).</summary>
    public int PadTokenId { get; }

    enum Kind { Plain, V1, Llama2 }
    readonly Kind kind;

    public LlavaPreprocessor(LlamaTokenizer tokenizer, LlavaDataOptions options)
    {
        Tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        Options = options ?? throw new ArgumentNullException(nameof(options));
        if (options.ModelMaxLength <= 0) throw new ArgumentOutOfRangeException(nameof(options), "ModelMaxLength must be positive.");
        PadTokenId = options.PadTokenId ?? tokenizer.UnkId;
        var t = options.Template;
        kind = t.Style switch
        {
            SeparatorStyle.Plain => Kind.Plain,
            SeparatorStyle.Llama2 => Kind.Llama2,
            SeparatorStyle.Two when t.Version.StartsWith("v1", StringComparison.Ordinal) => Kind.V1,
            _ => throw new NotSupportedException(
                $"Training preprocessing for template version '{t.Version}' ({t.Style}) is not implemented; use plain (stage 1), v1/vicuna_v1/llava_v1 or llama_2."),
        };
        if (options.MmUseImStartEnd && (tokenizer.TokenToId(DefaultImStartToken) is null || tokenizer.TokenToId(DefaultImEndToken) is null))
            throw new ArgumentException("MmUseImStartEnd needs a tokenizer that knows <im_start> and <im_end> (tokenizer.WithAddedTokens(\"<im_start>\", \"<im_end>\")), as LLaVA adds them.");
    }

    /// <summary>The whole of LLaVA's <c>__getitem__</c> text path for a record: multimodal rewrite (image records) then <see cref="Preprocess"/>.</summary>
    public TokenizedSample Process(LlavaRecord record)
    {
        var turns = record.HasImage ? PreprocessMultimodal(record.Conversations) : record.Conversations;
        return Preprocess(turns, record.HasImage);
    }

    /// <summary><see cref="PreprocessMultimodal(IReadOnlyList{ConversationTurn}, bool, bool, string)"/> with this preprocessor's options.</summary>
    public IReadOnlyList<ConversationTurn> PreprocessMultimodal(IReadOnlyList<ConversationTurn> turns) =>
        PreprocessMultimodal(turns, Options.IsMultimodal, Options.MmUseImStartEnd, Template.Version);

    /// <summary>
    /// LLaVA's <c>preprocess_multimodal</c>: in every turn that contains "&lt;image&gt;", all occurrences are removed,
    /// the text stripped, and one "&lt;image&gt;\n" put in front (then stripped again, so an image-only turn becomes
    /// just "&lt;image&gt;"); "mmtag" templates wrap it as "&lt;Image&gt;&lt;image&gt;&lt;/Image&gt;"; with
    /// <paramref name="mmUseImStartEnd"/> every "&lt;image&gt;" becomes "&lt;im_start&gt;&lt;image&gt;&lt;im_end&gt;".
    /// Returns new turns; nothing when not multimodal.
    /// </summary>
    public static IReadOnlyList<ConversationTurn> PreprocessMultimodal(IReadOnlyList<ConversationTurn> turns, bool isMultimodal,
        bool mmUseImStartEnd, string templateVersion)
    {
        if (!isMultimodal) return turns;
        var result = new List<ConversationTurn>(turns.Count);
        foreach (var turn in turns)
        {
            string v = turn.Value;
            if (v.Contains(DefaultImageToken, StringComparison.Ordinal))
            {
                v = PyStr.Strip(v.Replace(DefaultImageToken, "", StringComparison.Ordinal));
                v = PyStr.Strip(DefaultImageToken + "\n" + v);
                if (templateVersion.Contains("mmtag", StringComparison.Ordinal))
                    v = v.Replace(DefaultImageToken, "<Image>" + DefaultImageToken + "</Image>", StringComparison.Ordinal);
            }
            if (mmUseImStartEnd)
                v = v.Replace(DefaultImageToken, DefaultImStartToken + DefaultImageToken + DefaultImEndToken, StringComparison.Ordinal);
            result.Add(turn with { Value = v });
        }
        return result;
    }

    /// <summary>LLaVA's <c>preprocess</c> for one conversation (already through <c>preprocess_multimodal</c> if it has an image).</summary>
    public TokenizedSample Preprocess(IReadOnlyList<ConversationTurn> turns, bool hasImage) => kind switch
    {
        Kind.Plain => PreprocessPlain(turns),
        Kind.V1 => PreprocessTwoRoles(turns, hasImage, Template.Sep + Template.Roles[1] + ": ", v1Adjust: true),
        _ => PreprocessTwoRoles(turns, hasImage, "[/INST] ", v1Adjust: false),
    };

    /// <summary>
    /// <c>preprocess_plain</c> (stage 1): text = "&lt;image&gt;" + caption + sep ("\n"), tokenized with
    /// <c>tokenizer_image_token</c>; labels ignore the prefix <c>tokenizer_image_token("&lt;image&gt;")</c> (BOS + image).
    /// </summary>
    public TokenizedSample PreprocessPlain(IReadOnlyList<ConversationTurn> turns)
    {
        if (turns.Count != 2)
            throw new DataFormatException(DataIssue.UnsupportedFormat, $"the plain (pretraining) format needs exactly 2 turns, found {turns.Count}");
        if (!turns[0].Value.Contains(DefaultImageToken, StringComparison.Ordinal))
            throw new DataFormatException(DataIssue.UnsupportedFormat, "the plain (pretraining) format needs \"<image>\" in the first turn");
        string conversation = DefaultImageToken + turns[1].Value + Template.Sep;
        var ids = Tokenizer.TokenizerImageToken(conversation);
        var labels = (int[])ids.Clone();
        int prefix = Tokenizer.TokenizerImageToken(DefaultImageToken).Length;
        PyStr.FillSlice(labels, 0, prefix, IgnoreIndex);
        return new TokenizedSample(ids, labels);
    }

    /// <summary>The conversation rendered with the template, as <c>preprocess_v1</c> / <c>preprocess_llama_2</c> build it.</summary>
    public string RenderPrompt(IReadOnlyList<ConversationTurn> turns)
    {
        var t = Template;
        var conv = (t with { Messages = [] }).NewConversation();
        int start = turns.Count > 0 && RoleOf(turns[0]) != t.Roles[0] ? 1 : 0; // "Skip the first one if it is not from human"
        for (int j = start; j < turns.Count; j++)
        {
            string role = RoleOf(turns[j]);
            if (role != t.Roles[(j - start) % 2])
                throw new DataFormatException(DataIssue.RolesNotAlternating,
                    $"turn {j} is from \"{turns[j].From}\" but {(((j - start) % 2) == 0 ? "human" : "gpt")} was expected (turns must alternate human, gpt, ...)");
            conv.AppendMessage(role, turns[j].Value);
        }
        return conv.GetPrompt();

        string RoleOf(ConversationTurn turn) => turn.From switch
        {
            ConversationTurn.Human => t.Roles[0],
            ConversationTurn.Gpt => t.Roles[1],
            _ => throw new DataFormatException(DataIssue.UnknownRole, $"unknown role \"{turn.From}\" (expected \"human\" or \"gpt\")"),
        };
    }

    /// <summary>
    /// <c>preprocess_v1</c> (<paramref name="v1Adjust"/>) / <c>preprocess_llama_2</c>: BOS and every instruction part up to
    /// and including the assistant separator are -100; answers and sep2 are supervised. Text-only samples are
    /// tokenized with <c>tokenizer(...)</c> truncated to model_max_length; image samples with tokenizer_image_token.
    /// </summary>
    TokenizedSample PreprocessTwoRoles(IReadOnlyList<ConversationTurn> turns, bool hasImage, string sep, bool v1Adjust)
    {
        string conversation = RenderPrompt(turns);
        int[] ids = hasImage ? Tokenizer.TokenizerImageToken(conversation) : TokenizeTruncated(conversation);
        int[] target = (int[])ids.Clone();
        int totalLen = ids.Count(id => id != PadTokenId);

        var rounds = PyStr.Split(conversation, Template.Sep2!);
        int curLen = 1;
        PyStr.FillSlice(target, 0, curLen, IgnoreIndex);
        bool adjust = v1Adjust && !Tokenizer.Options.Legacy && Options.TokenizersAtLeast014;
        for (int i = 0; i < rounds.Length; i++)
        {
            string rou = rounds[i];
            if (rou.Length == 0) break;
            var parts = PyStr.Split(rou, sep);
            if (parts.Length != 2) break;
            string instruction = parts[0] + sep;
            int roundLen = TokenCount(rou, hasImage);
            int instructionLen = TokenCount(instruction, hasImage) - 2;
            if (i != 0 && adjust)
            {
                roundLen -= 1;
                instructionLen -= 1;
            }
            PyStr.FillSlice(target, curLen, curLen + instructionLen, IgnoreIndex);
            curLen += roundLen;
        }
        PyStr.FillSlice(target, curLen, null, IgnoreIndex);

        if (curLen < Options.ModelMaxLength && curLen != totalLen)
        {
            Array.Fill(target, IgnoreIndex);
            return new TokenizedSample(ids, target, true, $"tokenization mismatch: {curLen} vs. {totalLen}.");
        }
        return new TokenizedSample(ids, target);
    }

    int TokenCount(string text, bool hasImage) =>
        hasImage ? Tokenizer.TokenizerImageToken(text).Length
                 : Tokenizer.Encode(text, Tokenizer.Options.AddBosToken, Tokenizer.Options.AddEosToken).Length;

    /// <summary><c>tokenizer(text, max_length=model_max_length, truncation=True).input_ids</c>: the text is cut so that
    /// text plus special tokens fit.</summary>
    int[] TokenizeTruncated(string text)
    {
        bool bos = Tokenizer.Options.AddBosToken, eos = Tokenizer.Options.AddEosToken;
        var body = Tokenizer.Encode(text, addBos: false, addEos: false);
        int specials = (bos ? 1 : 0) + (eos ? 1 : 0);
        int keep = Math.Min(body.Length, Math.Max(0, Options.ModelMaxLength - specials));
        var ids = new List<int>(keep + specials);
        if (bos) ids.Add(Tokenizer.BosId);
        ids.AddRange(body.AsSpan(0, keep));
        if (eos) ids.Add(Tokenizer.EosId);
        return ids.ToArray();
    }
}
