using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Llava.Text.Jinja;

/// <summary>Bounds that keep a hostile template from hanging or exhausting memory.</summary>
public sealed record JinjaLimits
{
    /// <summary>Template source longer than this is rejected.</summary>
    public int MaxTemplateLength { get; init; } = 1_000_000;
    /// <summary>Nesting of blocks and expressions (parser recursion).</summary>
    public int MaxNesting { get; init; } = 64;
    /// <summary>Statements executed plus expressions evaluated plus loop iterations.</summary>
    public long MaxSteps { get; init; } = 2_000_000;
    /// <summary>Characters of rendered output, and of any single string the template builds.</summary>
    public int MaxOutputLength { get; init; } = 4_000_000;
    /// <summary>Items of any single list the template builds.</summary>
    public int MaxCollectionSize { get; init; } = 100_000;
    /// <summary>Total characters and list items allocated by the template over one render.</summary>
    public long MaxAllocation { get; init; } = 64_000_000;
    /// <summary>Largest <c>range()</c>.</summary>
    public int MaxRange { get; init; } = 100_000;
}

/// <summary>Options of the Jinja environment; the defaults are transformers' (trim_blocks and lstrip_blocks on).</summary>
public sealed record JinjaOptions
{
    public bool TrimBlocks { get; init; } = true;
    public bool LstripBlocks { get; init; } = true;
    public JinjaLimits Limits { get; init; } = new();
}

/// <summary>
/// A parsed template of the Jinja2 subset used by Hugging Face chat templates. Parsing and rendering
/// failures throw <see cref="ChatTemplateException"/> with the line and column of the construct.
/// </summary>
public sealed class JinjaTemplate
{
    readonly List<Node> body;
    readonly SourceMap map;

    public string Source { get; }
    public JinjaOptions Options { get; }

    JinjaTemplate(string source, JinjaOptions options, List<Node> body, SourceMap map)
    {
        Source = source;
        Options = options;
        this.body = body;
        this.map = map;
    }

    public static JinjaTemplate Parse(string source, JinjaOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        options ??= new JinjaOptions();
        if (source.Length > options.Limits.MaxTemplateLength)
            throw new ChatTemplateException($"template is longer than {options.Limits.MaxTemplateLength} characters");
        var map = new SourceMap(source);
        var items = Lexer.Tokenize(source, map, options.TrimBlocks, options.LstripBlocks);
        var body = Parser.Parse(items, map, options.Limits.MaxNesting);
        return new JinjaTemplate(source, options, body, map);
    }

    /// <summary>
    /// Renders with the given variables. Values may be null, string, bool, integers, floating-point numbers,
    /// dictionaries with string keys, enumerables, <see cref="JsonNode"/>, <see cref="JsonElement"/> and
    /// <see cref="ChatMessage"/>/<see cref="ChatContentPart"/>.
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        var globals = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (k, v) in variables) globals[k] = FromClr(v, 0);
        return new Interpreter(map, Options.Limits, globals).Run(body);
    }

    internal static object? FromClr(object? v, int depth)
    {
        if (depth > Values.MaxDataDepth) throw new ChatTemplateException($"template variable is nested deeper than {Values.MaxDataDepth} levels");
        switch (v)
        {
            case null: return null;
            case string or bool or long or double: return v;
            case int or short or byte or sbyte or ushort or uint: return Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture);
            case float f: return (double)f;
            case decimal m: return (double)m;
            case ChatMessage msg: return msg.ToTemplateValue();
            case ChatContentPart part: return part.ToTemplateValue();
            case JsonElement e: return FromJson(e, depth);
            case JsonNode n: return FromJson(JsonSerializer.SerializeToElement(n), depth);
            case IEnumerable<KeyValuePair<string, object?>> pairs:
            {
                var d = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, x) in pairs) d[k] = FromClr(x, depth + 1);
                return d;
            }
            case IDictionary dict:
            {
                var d = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (DictionaryEntry entry in dict)
                    d[entry.Key as string ?? throw new ChatTemplateException("template variables may only use string dictionary keys")] = FromClr(entry.Value, depth + 1);
                return d;
            }
            case IEnumerable seq:
            {
                var l = new List<object?>();
                foreach (var x in seq) l.Add(FromClr(x, depth + 1));
                return l;
            }
            default:
                throw new ChatTemplateException($"values of type {v.GetType().Name} cannot be passed to a chat template");
        }
    }

    static object? FromJson(JsonElement e, int depth)
    {
        if (depth > Values.MaxDataDepth) throw new ChatTemplateException($"template variable is nested deeper than {Values.MaxDataDepth} levels");
        switch (e.ValueKind)
        {
            case JsonValueKind.Null or JsonValueKind.Undefined: return null;
            case JsonValueKind.True: return true;
            case JsonValueKind.False: return false;
            case JsonValueKind.String: return e.GetString();
            case JsonValueKind.Number: return e.TryGetInt64(out long n) ? n : e.GetDouble();
            case JsonValueKind.Array: return e.EnumerateArray().Select(x => FromJson(x, depth + 1)).ToList();
            default:
                var d = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var p in e.EnumerateObject()) d[p.Name] = FromJson(p.Value, depth + 1);
                return d;
        }
    }
}
