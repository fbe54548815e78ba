using Llava.Text;

namespace Llava.Models.Gguf;

/// <summary>
/// The tokenizer.ggml.* token table as llama.cpp's converter builds it (_create_vocab_sentencepiece): the
/// SentencePiece pieces with their scores and types, added tokens from the tokenizer config (special ones as
/// CONTROL, others USER_DEFINED, score −1000), and every remaining id up to the model's vocab size as an
/// UNUSED "[PAD{id}]" with score −10000 (llava-hf pads its 32002 tokens to 32064 rows).
/// </summary>
internal sealed class LlamaGgufVocabulary
{
    /// <summary>llama.cpp's token types (SentencePiece numbering).</summary>
    public const int Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6;

    public required string[] Tokens { get; init; }
    public required float[] Scores { get; init; }
    public required int[] Types { get; init; }

    public static LlamaGgufVocabulary Build(LlamaTokenizer tokenizer, int vocabSize)
    {
        var sp = tokenizer.Model;
        var tokens = new string[vocabSize];
        var scores = new float[vocabSize];
        var types = new int[vocabSize];
        for (int i = 0; i < vocabSize; i++) { tokens[i] = $"[PAD{i}]"; scores[i] = -10000f; types[i] = Unused; }
        for (int id = 0; id < Math.Min(sp.Count, vocabSize); id++)
        {
            tokens[id] = sp.IdToPiece(id);
            scores[id] = sp.Score(id);
            types[id] = sp.TypeOf(id) switch
            {
                PieceType.Unknown => Unknown,
                PieceType.Control => Control,
                PieceType.Unused => Unused,
                PieceType.Byte => Byte,
                // USER_DEFINED pieces inside the model are reported as NORMAL by sentencepiece's Is* checks.
                _ => Normal,
            };
        }
        foreach (var t in tokenizer.Options.AddedTokens)
        {
            if (t.Id < 0 || t.Id >= vocabSize) continue;
            bool special = t.Special || LooksSpecial(t.Content);
            tokens[t.Id] = special ? t.Content : t.Content.Replace(SentencePieceModel.SpaceSymbol, ' ');
            types[t.Id] = special ? Control : UserDefined;
            scores[t.Id] = -1000f;
        }
        return new LlamaGgufVocabulary { Tokens = tokens, Scores = scores, Types = types };
    }

    /// <summary>The converter's does_token_look_special, for added tokens not flagged special.</summary>
    static bool LooksSpecial(string s) =>
        s is "<pad>" or "<mask>" or "<2mass>" or "[@BOS@]"
        || (s.StartsWith("<|") && s.EndsWith("|>"))
        || (s.StartsWith("<\uff5c") && s.EndsWith("\uff5c>"))
        || (s.StartsWith("<start_of_") && s.EndsWith(">"))
        || (s.StartsWith("<end_of_") && s.EndsWith(">"));
}
