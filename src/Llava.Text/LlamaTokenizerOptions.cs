using System.Text.Json;
using System.Text.Json.Nodes;

namespace Llava.Text;

/// <summary>
/// Settings of a Hugging Face <c>LlamaTokenizer</c> read from <c>tokenizer_config.json</c>,
/// <c>special_tokens_map.json</c> and <c>added_tokens.json</c>.
/// </summary>
public sealed record LlamaTokenizerOptions
{
    /// <summary>
    /// Hugging Face's <c>legacy</c> flag. LLaVA-1.5 checkpoints set <c>false</c>; when the key is missing
    /// transformers falls back to <c>true</c> (the old behaviour that adds a "▁" after every special token).
    /// </summary>
    public bool Legacy { get; init; } = true;
    public bool AddBosToken { get; init; } = true;
    public bool AddEosToken { get; init; }
    /// <summary>Prepend "▁" to the text (non-legacy mode) and strip it from the first token when decoding.</summary>
    public bool AddPrefixSpace { get; init; } = true;
    public string? BosToken { get; init; } = "<s>";
    public string? EosToken { get; init; } = "</s>";
    public string? UnkToken { get; init; } = "<unk>";
    public string? PadToken { get; init; }
    public IReadOnlyList<string> AdditionalSpecialTokens { get; init; } = [];
    /// <summary>Added tokens declared by the checkpoint (<c>added_tokens_decoder</c> / <c>added_tokens.json</c>).</summary>
    public IReadOnlyList<AddedToken> AddedTokens { get; init; } = [];

    /// <summary>The special-token strings (Hugging Face's <c>all_special_tokens</c>), in attribute order.</summary>
    public IEnumerable<string> SpecialTokenStrings()
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in new[] { BosToken, EosToken, UnkToken, PadToken }.Concat(AdditionalSpecialTokens))
            if (t != null && seen.Add(t)) yield return t;
    }

    /// <summary>
    /// Reads the JSON files present in <paramref name="dir"/> the way <c>from_pretrained</c> combines them:
    /// <c>special_tokens_map.json</c> overrides the special tokens of <c>tokenizer_config.json</c>, and
    /// <c>added_tokens.json</c> only contributes ids missing from <c>added_tokens_decoder</c>.
    /// </summary>
    public static LlamaTokenizerOptions FromDirectory(string dir)
    {
        var o = new LlamaTokenizerOptions();
        var added = new Dictionary<int, AddedToken>();

        var configPath = Path.Combine(dir, "tokenizer_config.json");
        if (File.Exists(configPath))
        {
            var cfg = ParseObject(configPath);
            o = o with
            {
                Legacy = cfg["legacy"]?.GetValue<bool>() ?? true,
                AddBosToken = cfg["add_bos_token"]?.GetValue<bool>() ?? true,
                AddEosToken = cfg["add_eos_token"]?.GetValue<bool>() ?? false,
                AddPrefixSpace = cfg["add_prefix_space"]?.GetValue<bool>() ?? true,
            };
            o = ApplySpecialTokens(o, cfg);
            if (cfg["added_tokens_decoder"] is JsonObject dec)
            {
                foreach (var (key, value) in dec)
                {
                    if (value is not JsonObject t || !int.TryParse(key, out int id)) continue;
                    added[id] = new AddedToken(id,
                        t["content"]?.GetValue<string>() ?? throw new InvalidDataException($"added token {id} has no content"),
                        t["special"]?.GetValue<bool>() ?? false,
                        t["lstrip"]?.GetValue<bool>() ?? false,
                        t["rstrip"]?.GetValue<bool>() ?? false,
                        t["single_word"]?.GetValue<bool>() ?? false,
                        t["normalized"]?.GetValue<bool>() ?? false);
                }
            }
        }

        var mapPath = Path.Combine(dir, "special_tokens_map.json");
        if (File.Exists(mapPath)) o = ApplySpecialTokens(o, ParseObject(mapPath));

        var addedPath = Path.Combine(dir, "added_tokens.json");
        if (File.Exists(addedPath))
        {
            var specials = o.SpecialTokenStrings().ToHashSet(StringComparer.Ordinal);
            foreach (var (content, value) in ParseObject(addedPath))
            {
                int id = value!.GetValue<int>();
                if (added.ContainsKey(id)) continue;
                bool special = specials.Contains(content);
                added[id] = new AddedToken(id, content, special, Normalized: !special);
            }
        }
        return o with { AddedTokens = added.Values.OrderBy(t => t.Id).ToArray() };
    }

    static JsonObject ParseObject(string path) =>
        JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true }) as JsonObject
        ?? throw new InvalidDataException($"{path} is not a JSON object.");

    /// <summary>Special-token values may be a string, an AddedToken object with "content", or null.</summary>
    static string? TokenText(JsonNode? node) => node switch
    {
        null => null,
        JsonValue v => v.GetValue<string>(),
        JsonObject obj => obj["content"]?.GetValue<string>(),
        _ => null,
    };

    static LlamaTokenizerOptions ApplySpecialTokens(LlamaTokenizerOptions o, JsonObject src)
    {
        if (src.ContainsKey("bos_token")) o = o with { BosToken = TokenText(src["bos_token"]) };
        if (src.ContainsKey("eos_token")) o = o with { EosToken = TokenText(src["eos_token"]) };
        if (src.ContainsKey("unk_token")) o = o with { UnkToken = TokenText(src["unk_token"]) };
        if (src.ContainsKey("pad_token")) o = o with { PadToken = TokenText(src["pad_token"]) };
        if (src["additional_special_tokens"] is JsonArray arr)
            o = o with { AdditionalSpecialTokens = arr.Select(TokenText).OfType<string>().ToArray() };
        return o;
    }
}
