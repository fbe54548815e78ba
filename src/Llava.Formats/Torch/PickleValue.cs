using System.Numerics;

namespace Llava.Formats.Torch;

/// <summary>
/// Helpers for the values the unpickler produces: null (None), bool, long, BigInteger, double, string, byte[],
/// object?[] (tuple), List&lt;object?&gt; (list), <see cref="PickleDict"/>, <see cref="PickleGlobal"/>,
/// <see cref="TorchStorage"/> and <see cref="TorchTensorRef"/>.
/// </summary>
internal static class PickleValue
{
    public static long ToLong(object? v, string what, Func<string, Exception> fail) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        BigInteger big when big >= long.MinValue && big <= long.MaxValue => (long)big,
        BigInteger big => throw fail($"{what} {big} does not fit in 64 bits"),
        _ => throw fail($"{what} must be an integer, got {Describe(v)}"),
    };

    /// <summary>A short description of a value for error messages (never its full contents).</summary>
    public static string Describe(object? v) => v switch
    {
        null => "None",
        bool b => b ? "True" : "False",
        long or BigInteger or double => Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture)!,
        string s => s.Length <= 60 ? $"'{s}'" : $"'{s[..60]}...'",
        byte[] b => $"bytes[{b.Length}]",
        object?[] t => $"tuple of {t.Length}",
        List<object?> l => $"list of {l.Count}",
        PickleDict d => $"dict of {d.Count}",
        PickleGlobal g => $"global '{g.FullName}'",
        TorchStorage s => $"storage '{s.Key}'",
        TorchTensorRef => "tensor",
        _ => v.GetType().Name,
    };
}
