using System.Globalization;
using System.Text;

namespace Llava.Text.Jinja;

/// <summary>An undefined variable or missing attribute: renders as "", is falsy, iterates as empty.</summary>
internal sealed class Undefined(string description)
{
    public string Description { get; } = description;
}

/// <summary>The mutable object made by <c>namespace(...)</c>.</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);
}

/// <summary>The <c>loop</c> variable of a for loop.</summary>
internal sealed class LoopInfo
{
    public required List<object?> Items { get; init; }
    public int Index0 { get; set; }

    public object? Get(string name) => name switch
    {
        "index" => (long)Index0 + 1,
        "index0" => (long)Index0,
        "revindex" => (long)(Items.Count - Index0),
        "revindex0" => (long)(Items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == Items.Count - 1,
        "length" => (long)Items.Count,
        "previtem" => Index0 > 0 ? Items[Index0 - 1] : new Undefined("loop.previtem"),
        "nextitem" => Index0 + 1 < Items.Count ? Items[Index0 + 1] : new Undefined("loop.nextitem"),
        "depth" => 1L,
        "depth0" => 0L,
        _ => new Undefined($"loop.{name}"),
    };
}

/// <summary>Python/Jinja value semantics: truthiness, str(), repr(), equality, type names.</summary>
internal static class Values
{
    public const int MaxDataDepth = 256;

    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long n => n != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        Dictionary<string, object?> d => d.Count > 0,
        _ => true,
    };

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        Dictionary<string, object?> => "dict",
        Namespace => "Namespace",
        LoopInfo => "LoopContext",
        _ => v.GetType().Name,
    };

    /// <summary>Python's str(): what <c>{{ }}</c> prints.</summary>
    public static string Str(object? v) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v),
    };

    public static string Repr(object? v)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, v, 0, topLevelStr: true);
        return sb.ToString();
    }

    static void AppendRepr(StringBuilder sb, object? v, int depth, bool topLevelStr = false)
    {
        if (depth > MaxDataDepth) throw new ChatTemplateException($"value is nested deeper than {MaxDataDepth} levels");
        switch (v)
        {
            case null: sb.Append("None"); break;
            case Undefined: break;
            case bool b: sb.Append(b ? "True" : "False"); break;
            case long n: sb.Append(n.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(FormatFloat(d)); break;
            case string s:
                if (topLevelStr) sb.Append(s);
                else AppendPyString(sb, s);
                break;
            case List<object?> l:
                sb.Append('[');
                for (int i = 0; i < l.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, l[i], depth + 1);
                }
                sb.Append(']');
                break;
            case Dictionary<string, object?> d:
                sb.Append('{');
                bool first = true;
                foreach (var (k, val) in d)
                {
                    if (!first) sb.Append(", ");
                    first = false;
                    AppendPyString(sb, k);
                    sb.Append(": ");
                    AppendRepr(sb, val, depth + 1);
                }
                sb.Append('}');
                break;
            case Namespace: sb.Append("<Namespace>"); break;
            case LoopInfo: sb.Append("<LoopContext>"); break;
            default: sb.Append(v); break;
        }
    }

    static void AppendPyString(StringBuilder sb, string s)
    {
        char q = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(q);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == q) sb.Append('\\').Append(c);
                    else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append(q);
    }

    public static string FormatFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsPositiveInfinity(d)) return "inf";
        if (double.IsNegativeInfinity(d)) return "-inf";
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        if (r.Contains('E'))
        {
            // Python: 1e+16, 1.5e-07
            int e = r.IndexOf('E');
            string mant = r[..e], exp = r[(e + 1)..];
            int ev = int.Parse(exp, CultureInfo.InvariantCulture);
            return mant + "e" + (ev < 0 ? "-" : "+") + Math.Abs(ev).ToString("00", CultureInfo.InvariantCulture);
        }
        return r.Contains('.') ? r : r + ".0";
    }

    /// <summary>Python ==: numbers compare by value (True == 1), containers element-wise.</summary>
    public static bool Equal(object? a, object? b, int depth = 0)
    {
        if (depth > MaxDataDepth) throw new ChatTemplateException($"value is nested deeper than {MaxDataDepth} levels");
        if (a is null || b is null) return a is null && b is null;
        if (a is Undefined || b is Undefined) return a is Undefined && b is Undefined;
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a) == ToDouble(b);
            return ToLong(a) == ToLong(b);
        }
        if (a is string sa && b is string sb) return string.Equals(sa, sb, StringComparison.Ordinal);
        if (a is List<object?> la && b is List<object?> lb)
        {
            if (la.Count != lb.Count) return false;
            for (int i = 0; i < la.Count; i++) if (!Equal(la[i], lb[i], depth + 1)) return false;
            return true;
        }
        if (a is Dictionary<string, object?> da && b is Dictionary<string, object?> db)
        {
            if (da.Count != db.Count) return false;
            foreach (var (k, v) in da)
                if (!db.TryGetValue(k, out var w) || !Equal(v, w, depth + 1)) return false;
            return true;
        }
        return ReferenceEquals(a, b);
    }

    public static bool IsNumber(object? v) => v is long or double or bool;
    public static long ToLong(object? v) => v switch { long n => n, bool b => b ? 1 : 0, double d => (long)d, _ => 0 };
    public static double ToDouble(object? v) => v switch { long n => n, bool b => b ? 1 : 0, double d => d, _ => 0 };

    /// <summary>JSON like transformers' tojson: json.dumps(x, ensure_ascii=False, indent=indent, sort_keys=sort_keys).</summary>
    public static string ToJson(object? v, int? indent, bool sortKeys)
    {
        var sb = new StringBuilder();
        AppendJson(sb, v, indent, sortKeys, 0);
        return sb.ToString();
    }

    static void AppendJson(StringBuilder sb, object? v, int? indent, bool sortKeys, int depth)
    {
        if (depth > MaxDataDepth) throw new ChatTemplateException($"value is nested deeper than {MaxDataDepth} levels");
        switch (v)
        {
            case null: sb.Append("null"); break;
            case Undefined u: throw new ChatTemplateException($"{u.Description} is undefined and cannot be serialized to JSON");
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long n: sb.Append(n.ToString(CultureInfo.InvariantCulture)); break;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : FormatFloat(d));
                break;
            case string s: AppendJsonString(sb, s); break;
            case List<object?> l:
                if (l.Count == 0) { sb.Append("[]"); break; }
                sb.Append('[');
                for (int i = 0; i < l.Count; i++)
                {
                    if (i > 0) sb.Append(indent is null ? ", " : ",");
                    NewLine(sb, indent, depth + 1);
                    AppendJson(sb, l[i], indent, sortKeys, depth + 1);
                }
                NewLine(sb, indent, depth);
                sb.Append(']');
                break;
            case Dictionary<string, object?> d:
                if (d.Count == 0) { sb.Append("{}"); break; }
                sb.Append('{');
                IEnumerable<KeyValuePair<string, object?>> pairs = sortKeys ? d.OrderBy(p => p.Key, StringComparer.Ordinal) : d;
                bool first = true;
                foreach (var (k, val) in pairs)
                {
                    if (!first) sb.Append(indent is null ? ", " : ",");
                    first = false;
                    NewLine(sb, indent, depth + 1);
                    AppendJsonString(sb, k);
                    sb.Append(": ");
                    AppendJson(sb, val, indent, sortKeys, depth + 1);
                }
                NewLine(sb, indent, depth);
                sb.Append('}');
                break;
            default: throw new ChatTemplateException($"object of type {TypeName(v)} is not JSON serializable");
        }
    }

    static void NewLine(StringBuilder sb, int? indent, int level)
    {
        if (indent is int n) sb.Append('\n').Append(' ', n * level);
    }

    static void AppendJsonString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
