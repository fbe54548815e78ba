using System.Globalization;

namespace Llava.Formats.Gguf;

/// <summary>One typed GGUF metadata value. <see cref="Raw"/> holds the CLR value (byte, sbyte, ..., string, <see cref="GgufArray"/>).</summary>
public sealed class GgufValue
{
    public GgufValueType Type { get; }
    public object Raw { get; }

    GgufValue(GgufValueType type, object raw) { Type = type; Raw = raw; }

    public static GgufValue UInt8(byte v) => new(GgufValueType.UInt8, v);
    public static GgufValue Int8(sbyte v) => new(GgufValueType.Int8, v);
    public static GgufValue UInt16(ushort v) => new(GgufValueType.UInt16, v);
    public static GgufValue Int16(short v) => new(GgufValueType.Int16, v);
    public static GgufValue UInt32(uint v) => new(GgufValueType.UInt32, v);
    public static GgufValue Int32(int v) => new(GgufValueType.Int32, v);
    public static GgufValue Float32(float v) => new(GgufValueType.Float32, v);
    public static GgufValue Bool(bool v) => new(GgufValueType.Bool, v);
    public static GgufValue String(string v) => new(GgufValueType.String, v ?? throw new ArgumentNullException(nameof(v)));
    public static GgufValue UInt64(ulong v) => new(GgufValueType.UInt64, v);
    public static GgufValue Int64(long v) => new(GgufValueType.Int64, v);
    public static GgufValue Float64(double v) => new(GgufValueType.Float64, v);
    public static GgufValue Array(GgufArray v) => new(GgufValueType.Array, v ?? throw new ArgumentNullException(nameof(v)));
    public static GgufValue Array(GgufValueType elementType, System.Array items) => Array(new GgufArray(elementType, items));
    public static GgufValue StringArray(IEnumerable<string> v) => Array(GgufValueType.String, v.ToArray());
    public static GgufValue Float32Array(IEnumerable<float> v) => Array(GgufValueType.Float32, v.ToArray());
    public static GgufValue Int32Array(IEnumerable<int> v) => Array(GgufValueType.Int32, v.ToArray());

    public bool IsInteger => Type is GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.UInt16 or GgufValueType.Int16
        or GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.UInt64 or GgufValueType.Int64;

    /// <summary>Any integer type as a long (writers differ: counts are uint32 or uint64).</summary>
    public long AsInt64() => Raw switch
    {
        byte v => v, sbyte v => v, ushort v => v, short v => v, uint v => v, int v => v, long v => v,
        ulong v => v <= long.MaxValue ? (long)v : throw new InvalidOperationException($"uint64 value {v} does not fit a long"),
        _ => throw new InvalidOperationException($"{Type} is not an integer"),
    };

    /// <summary>A float32/float64 (or integer) value as a double.</summary>
    public double AsDouble() => Raw switch
    {
        float f => f,
        double d => d,
        _ when IsInteger => AsInt64(),
        _ => throw new InvalidOperationException($"{Type} is not a number"),
    };

    public string AsString() => Raw as string ?? throw new InvalidOperationException($"{Type} is not a string");
    public bool AsBool() => Raw is bool b ? b : throw new InvalidOperationException($"{Type} is not a bool");
    public GgufArray AsArray() => Raw as GgufArray ?? throw new InvalidOperationException($"{Type} is not an array");

    public override string ToString() => Raw switch
    {
        GgufArray a => $"[{a.ElementType} x {a.Count}]",
        string s => s.Length > 60 ? $"\"{s[..60]}...\"" : $"\"{s}\"",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => Raw.ToString() ?? "",
    };
}
