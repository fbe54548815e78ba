namespace Llava.Formats.Gguf;

/// <summary>The key/value metadata of a GGUF file, in file order, with typed getters that name the file on a mismatch.</summary>
public sealed class GgufMetadata
{
    readonly Dictionary<string, GgufValue> values = new(StringComparer.Ordinal);
    readonly List<string> order = new();
    readonly string source;

    public GgufMetadata(string source) => this.source = source;

    public int Count => order.Count;
    /// <summary>Keys in the order they were stored.</summary>
    public IReadOnlyList<string> Keys => order;
    public GgufValue this[string key] => values.TryGetValue(key, out var v) ? v : throw new KeyNotFoundException($"{source}: no metadata key '{key}'");

    /// <summary>Adds a key; false when it is already present.</summary>
    public bool TryAdd(string key, GgufValue value)
    {
        if (!values.TryAdd(key, value)) return false;
        order.Add(key);
        return true;
    }

    public bool Contains(string key) => values.ContainsKey(key);
    public bool TryGet(string key, out GgufValue value) => values.TryGetValue(key, out value!);

    T Get<T>(string key, Func<GgufValue, T> convert, string what)
    {
        var v = this[key];
        try { return convert(v); }
        catch (InvalidOperationException e) { throw new ModelFormatException($"{source}: metadata '{key}' is {v.Type}, expected {what} ({e.Message})"); }
    }

    public string GetString(string key) => Get(key, v => v.AsString(), "a string");
    public long GetInt(string key) => Get(key, v => v.AsInt64(), "an integer");
    public double GetFloat(string key) => Get(key, v => v.AsDouble(), "a number");
    public bool GetBool(string key) => Get(key, v => v.AsBool(), "a bool");
    public GgufArray GetArray(string key) => Get(key, v => v.AsArray(), "an array");
    public string[] GetStringArray(string key) => Get(key, v => v.AsArray().AsStrings(), "a string array");
    public double[] GetFloatArray(string key) => Get(key, v => v.AsArray().AsDoubles(), "a float array");
    public long[] GetIntArray(string key) => Get(key, v => v.AsArray().AsInt64s(), "an integer array");

    public string? GetStringOrNull(string key) => Contains(key) ? GetString(key) : null;
    public long GetInt(string key, long fallback) => Contains(key) ? GetInt(key) : fallback;
    public double GetFloat(string key, double fallback) => Contains(key) ? GetFloat(key) : fallback;
    public bool GetBool(string key, bool fallback) => Contains(key) ? GetBool(key) : fallback;
}
