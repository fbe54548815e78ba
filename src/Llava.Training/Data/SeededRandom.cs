namespace Llava.Training.Data;

/// <summary>
/// A small deterministic PRNG (xoshiro256**, seeded through SplitMix64): the same seed gives the same stream on
/// every platform and .NET version. Not thread-safe. (Not torch's generator: orders differ from PyTorch's.)
/// </summary>
public sealed class SeededRandom
{
    ulong s0, s1, s2, s3;

    public SeededRandom(ulong seed)
    {
        ulong x = seed;
        s0 = SplitMix(ref x);
        s1 = SplitMix(ref x);
        s2 = SplitMix(ref x);
        s3 = SplitMix(ref x);
    }

    /// <summary>A generator for (seed, stream), e.g. one per epoch.</summary>
    public static SeededRandom For(ulong seed, long stream)
    {
        ulong x = seed ^ 0xD1B54A32D192ED03UL * (ulong)(stream + 1);
        return new SeededRandom(SplitMix(ref x));
    }

    static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextUInt64()
    {
        ulong result = ulong.RotateLeft(s1 * 5, 7) * 9;
        ulong t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = ulong.RotateLeft(s3, 45);
        return result;
    }

    /// <summary>Uniform integer in [0, n) (unbiased, Lemire's method).</summary>
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n));
        ulong bound = (ulong)n;
        ulong threshold = (0UL - bound) % bound;
        while (true)
        {
            ulong r = NextUInt64();
            ulong hi = Math.BigMul(r, bound, out ulong lo);
            if (lo >= threshold) return (int)hi;
        }
    }

    /// <summary>A random permutation of 0..n-1 (<c>torch.randperm(n)</c>'s role), Fisher-Yates.</summary>
    public int[] Permutation(int n)
    {
        var p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }
}
