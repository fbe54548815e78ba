namespace Llava.Formats.Gguf;

/// <summary>
/// A GGUF metadata array: one element type and a typed .NET array holding the elements
/// (<c>byte[]</c>, <c>sbyte[]</c>, <c>ushort[]</c>, <c>short[]</c>, <c>uint[]</c>, <c>int[]</c>, <c>float[]</c>, <c>bool[]</c>,
/// <c>string[]</c>, <c>ulong[]</c>, <c>long[]</c>, <c>double[]</c>, or <c>GgufArray[]</c> for nested arrays).
/// </summary>
public sealed class GgufArray
{
    public GgufValueType ElementType { get; }
    public Array Items { get; }
    public int Count => Items.Length;

    public GgufArray(GgufValueType elementType, Array items)
    {
        var expected = ClrType(elementType);
        if (items.GetType().GetElementType() != expected || items.Rank != 1)
            throw new ArgumentException($"a GGUF {elementType} array needs a {expected.Name}[] (got {items.GetType().Name})");
        ElementType = elementType;
        Items = items;
    }

    /// <summary>The CLR element type that stores values of <paramref name="t"/>.</summary>
    public static Type ClrType(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 => typeof(byte),
        GgufValueType.Int8 => typeof(sbyte),
        GgufValueType.UInt16 => typeof(ushort),
        GgufValueType.Int16 => typeof(short),
        GgufValueType.UInt32 => typeof(uint),
        GgufValueType.Int32 => typeof(int),
        GgufValueType.Float32 => typeof(float),
        GgufValueType.Bool => typeof(bool),
        GgufValueType.String => typeof(string),
        GgufValueType.Array => typeof(GgufArray),
        GgufValueType.UInt64 => typeof(ulong),
        GgufValueType.Int64 => typeof(long),
        GgufValueType.Float64 => typeof(double),
        _ => throw new ArgumentOutOfRangeException(nameof(t), $"unknown GGUF value type {(uint)t}"),
    };

    public string[] AsStrings() => Items as string[] ?? throw new InvalidOperationException($"array of {ElementType}, not strings");

    /// <summary>Elements of a float32/float64 array as doubles.</summary>
    public double[] AsDoubles() => Items switch
    {
        float[] f => Array.ConvertAll(f, x => (double)x),
        double[] d => (double[])d.Clone(),
        _ => throw new InvalidOperationException($"array of {ElementType}, not floats"),
    };

    /// <summary>Elements of an integer array as longs (uint64 values above long.MaxValue throw).</summary>
    public long[] AsInt64s() => ElementType switch
    {
        // Switch on the declared type, not the array's runtime type: the CLR lets an int[] pass as a uint[].
        GgufValueType.UInt8 => Array.ConvertAll((byte[])Items, x => (long)x),
        GgufValueType.Int8 => Array.ConvertAll((sbyte[])Items, x => (long)x),
        GgufValueType.UInt16 => Array.ConvertAll((ushort[])Items, x => (long)x),
        GgufValueType.Int16 => Array.ConvertAll((short[])Items, x => (long)x),
        GgufValueType.UInt32 => Array.ConvertAll((uint[])Items, x => (long)x),
        GgufValueType.Int32 => Array.ConvertAll((int[])Items, x => (long)x),
        GgufValueType.Int64 => (long[])((long[])Items).Clone(),
        GgufValueType.UInt64 => Array.ConvertAll((ulong[])Items, x => checked((long)x)),
        _ => throw new InvalidOperationException($"array of {ElementType}, not integers"),
    };
}
