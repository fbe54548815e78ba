namespace Llava.Training.Synthetic;

/// <summary>
/// A small deterministic generator (SplitMix64), so scenes and text depend only on the seed, never on the
/// runtime's <see cref="Random"/> implementation or on thread scheduling.
/// </summary>
public sealed class ShapesRng
{
    ulong _state;

    public ShapesRng(ulong seed) => _state = seed;

    public ulong NextU64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, n).</summary>
    public int Next(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n));
        return (int)((NextU64() >> 1) % (ulong)n);
    }

    /// <summary>Uniform in [lo, hi] inclusive.</summary>
    public int Next(int lo, int hi) => lo + Next(hi - lo + 1);

    public double NextDouble() => (NextU64() >> 11) * (1.0 / (1UL << 53));

    public float Range(float lo, float hi) => lo + (float)NextDouble() * (hi - lo);

    public bool Chance(double p) => NextDouble() < p;

    public T Pick<T>(IReadOnlyList<T> items) => items[Next(items.Count)];

    public void Shuffle<T>(IList<T> items)
    {
        for (int i = items.Count - 1; i > 0; i--)
        {
            int j = Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    /// <summary>Hashes several values into one well-mixed 64-bit seed.</summary>
    public static ulong Mix(params ReadOnlySpan<ulong> values)
    {
        ulong h = 0x243F6A8885A308D3UL;
        foreach (var v in values)
        {
            var r = new ShapesRng(h ^ v);
            h = r.NextU64();
        }
        return h;
    }
}
