using System.Text.Json;
using System.Text.Json.Nodes;
using Llava.Text.Jinja;

namespace Llava.Text;

/// <summary>One part of a multimodal message: <c>{"type": "text", "text": ...}</c> or <c>{"type": "image"}</c>.</summary>
public sealed record ChatContentPart(string Type, string? Text = null)
{
    public static ChatContentPart Image { get; } = new("image");
    public static ChatContentPart FromText(string text) => new("text", text);

    internal Dictionary<string, object?> ToTemplateValue()
    {
        var d = new Dictionary<string, object?>(StringComparer.Ordinal) { ["type"] = Type };
        if (Text is not null) d["text"] = Text;
        return d;
    }
}

/// <summary>
/// A chat message as transformers' <c>apply_chat_template</c> takes it: a role and either plain text
/// (<c>"content": "..."</c>) or a list of parts (<c>"content": [{"type": "image"}, {"type": "text", ...}]</c>).
/// </summary>
public sealed class ChatMessage
{
    public string Role { get; }
    /// <summary>Plain-text content, or null when the message has <see cref="Parts"/>.</summary>
    public string? Text { get; }
    /// <summary>Content parts, or null when the message is plain text.</summary>
    public IReadOnlyList<ChatContentPart>? Parts { get; }

    public ChatMessage(string role, string text)
    {
        Role = role ?? throw new ArgumentNullException(nameof(role));
        Text = text ?? throw new ArgumentNullException(nameof(text));
    }

    public ChatMessage(string role, IReadOnlyList<ChatContentPart> parts)
    {
        Role = role ?? throw new ArgumentNullException(nameof(role));
        Parts = parts ?? throw new ArgumentNullException(nameof(parts));
    }

    public ChatMessage(string role, params ChatContentPart[] parts) : this(role, (IReadOnlyList<ChatContentPart>)parts) { }

    internal Dictionary<string, object?> ToTemplateValue() => new(StringComparer.Ordinal)
    {
        ["role"] = Role,
        ["content"] = Parts is null ? Text : Parts.Select(p => (object?)p.ToTemplateValue()).ToList(),
    };
}

/// <summary>
/// A Hugging Face chat template (the Jinja <c>chat_template</c> of a checkpoint), rendered the way
/// transformers' <c>apply_chat_template</c> does (trim_blocks and lstrip_blocks on) by a sandboxed interpreter
/// of the Jinja subset chat templates use (see <see cref="JinjaTemplate"/>).
/// </summary>
public sealed class ChatTemplate
{
    readonly JinjaTemplate template;

    public string Source => template.Source;
    public string? BosToken { get; }
    public string? EosToken { get; }
    /// <summary>The file the template came from, when loaded by <see cref="FromDirectory(string, string?)"/>.</summary>
    public string? Origin { get; init; }

    /// <summary>Parses <paramref name="source"/>; throws <see cref="ChatTemplateException"/> on syntax errors.</summary>
    public ChatTemplate(string source, string? bosToken = "<s>", string? eosToken = "</s>", JinjaOptions? options = null)
    {
        template = JinjaTemplate.Parse(source, options);
        BosToken = bosToken;
        EosToken = eosToken;
    }

    /// <summary>
    /// Loads the checkpoint's chat template, or null when it has none. Like transformers' processor, a
    /// <c>chat_template.jinja</c> file wins over <c>chat_template.json</c>, which wins over the
    /// <c>"chat_template"</c> of <c>tokenizer_config.json</c>. A list of named templates picks
    /// <paramref name="name"/> or else "default". BOS/EOS come from the tokenizer files.
    /// </summary>
    public static ChatTemplate? FromDirectory(string dir, string? name = null)
    {
        var (source, origin) = FindSource(dir, name);
        if (source is null) return null;
        var tok = LlamaTokenizerOptions.FromDirectory(dir);
        return new ChatTemplate(source, tok.BosToken, tok.EosToken) { Origin = origin };
    }

    static (string? Source, string? Origin) FindSource(string dir, string? name)
    {
        var jinjaPath = Path.Combine(dir, "chat_template.jinja");
        if (name is null && File.Exists(jinjaPath)) return (File.ReadAllText(jinjaPath), jinjaPath);

        var jsonPath = Path.Combine(dir, "chat_template.json");
        if (name is null && File.Exists(jsonPath))
        {
            var t = Select(ReadObject(jsonPath)["chat_template"], null, jsonPath);
            if (t is not null) return (t, jsonPath);
        }

        var configPath = Path.Combine(dir, "tokenizer_config.json");
        if (File.Exists(configPath))
        {
            var t = Select(ReadObject(configPath)["chat_template"], name, configPath);
            if (t is not null) return (t, configPath);
        }
        if (name is not null) throw new ChatTemplateException($"no chat template named '{name}' in {dir}");
        return (null, null);
    }

    static JsonObject ReadObject(string path) =>
        JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true }) as JsonObject
        ?? throw new InvalidDataException($"{path} is not a JSON object.");

    /// <summary>"chat_template" is a string, or a list of {"name", "template"} objects.</summary>
    static string? Select(JsonNode? node, string? name, string path)
    {
        switch (node)
        {
            case null: return null;
            case JsonValue v when v.TryGetValue<string>(out var s): return name is null || name == "default" ? s : null;
            case JsonArray arr:
            {
                var named = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var entry in arr)
                    if (entry?["name"]?.GetValue<string>() is string n && entry["template"]?.GetValue<string>() is string t) named[n] = t;
                string want = name ?? "default";
                if (named.TryGetValue(want, out var found)) return found;
                if (name is not null) return null;
                throw new ChatTemplateException(
                    $"{path} has chat templates named {string.Join(", ", named.Keys.Select(k => $"'{k}'"))} but none named 'default'; pick one by name");
            }
            default: throw new InvalidDataException($"{path}: \"chat_template\" must be a string or a list of {{name, template}}.");
        }
    }

    /// <summary>
    /// Renders <paramref name="messages"/> with <c>add_generation_prompt</c>, <c>bos_token</c>, <c>eos_token</c> and
    /// any <paramref name="extra"/> variables (which may override those).
    /// </summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? extra = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var vars = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages.Select(m => (object?)m.ToTemplateValue()).ToList(),
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = BosToken,
            ["eos_token"] = EosToken,
        };
        if (extra is not null)
            foreach (var (k, v) in extra) vars[k] = v;
        return template.Render(vars);
    }
}
