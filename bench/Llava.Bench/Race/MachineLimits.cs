using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Text.Json;

namespace Llava.Bench.Race;

/// <summary>
/// The machine's ceilings at a thread count: streaming read bandwidth (GB/s, the best of several passes over 1 GiB,
/// far beyond the caches) and the f32 FMA peak (GFLOP/s, independent FMA chains in registers, the widest vectors the
/// JIT accelerates). Measured once per (CPU, threads) and cached in the cache directory.
/// </summary>
sealed record MachineLimits(string Cpu, int Threads, double ReadGBps, double FmaGflops, int VectorBits, string MeasuredAt, string LoadAverage)
{
    public static MachineLimits Get(string cacheDir, int threads, bool remeasure = false)
    {
        string cpu = CpuModel();
        string path = Path.Combine(cacheDir, $"machine-limits-t{threads}.json");
        if (File.Exists(path) && !remeasure)
        {
            try
            {
                var cached = JsonSerializer.Deserialize<MachineLimits>(File.ReadAllText(path));
                if (cached is not null && cached.Cpu == cpu && cached.Threads == threads) return cached;
            }
            catch (JsonException) { }
        }
        Console.Error.WriteLine($"[limits] measuring read bandwidth and FMA peak on {threads} thread(s) (cached in {path})");
        var limits = new MachineLimits(cpu, threads, ReadBandwidth(threads), FmaPeak(threads),
            Vector512.IsHardwareAccelerated ? 512 : Vector256.IsHardwareAccelerated ? 256 : 128, DateTime.UtcNow.ToString("u"), Load());
        File.WriteAllText(path, JsonSerializer.Serialize(limits, new JsonSerializerOptions { WriteIndented = true }));
        return limits;
    }

    static string Load()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "?"; }
    }

    public static string CpuModel()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
                if (line.StartsWith("model name")) return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    static unsafe double ReadBandwidth(int threads)
    {
        const long bytes = 1L << 30;
        byte* p = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 4096);
        try
        {
            for (long o = 0; o < bytes; o += 1 << 28) new Span<byte>(p + o, 1 << 28).Fill(1);
            double best = 0;
            for (int pass = 0; pass < 6; pass++)
            {
                long slice = bytes / threads;
                var sw = Stopwatch.StartNew();
                var sums = new float[threads];
                Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
                {
                    float* f = (float*)(p + t * slice);
                    long n = slice / 4;
                    var a0 = Vector256<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0;
                    for (long i = 0; i < n; i += 32)
                    {
                        a0 += Vector256.Load(f + i);
                        a1 += Vector256.Load(f + i + 8);
                        a2 += Vector256.Load(f + i + 16);
                        a3 += Vector256.Load(f + i + 24);
                    }
                    sums[t] = Vector256.Sum(a0 + a1 + a2 + a3);
                });
                best = Math.Max(best, bytes / sw.Elapsed.TotalSeconds / 1e9);
                GC.KeepAlive(sums);
            }
            return best;
        }
        finally { NativeMemory.AlignedFree(p); }
    }

    static double FmaPeak(int threads)
    {
        const long iters = 20_000_000;
        double best = 0;
        for (int pass = 0; pass < 5; pass++)
        {
            var sw = Stopwatch.StartNew();
            var sink = new float[threads];
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t => sink[t] = FmaLoop(iters, out _));
            double s = sw.Elapsed.TotalSeconds;
            FmaLoop(1, out int lanes);
            best = Math.Max(best, threads * iters * 10.0 * lanes * 2 / s / 1e9);
        }
        return best;
    }

    /// <summary>10 independent FMA chains (enough to cover latency × issue width on current x86 cores).</summary>
    static float FmaLoop(long iters, out int lanes)
    {
        if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported)
        {
            lanes = 16;
            var m = Vector512.Create(0.999f); var c = Vector512.Create(0.001f);
            Vector512<float> a0 = Vector512.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
            for (long i = 0; i < iters; i++)
            {
                a0 = Avx512F.FusedMultiplyAdd(a0, m, c); a1 = Avx512F.FusedMultiplyAdd(a1, m, c);
                a2 = Avx512F.FusedMultiplyAdd(a2, m, c); a3 = Avx512F.FusedMultiplyAdd(a3, m, c);
                a4 = Avx512F.FusedMultiplyAdd(a4, m, c); a5 = Avx512F.FusedMultiplyAdd(a5, m, c);
                a6 = Avx512F.FusedMultiplyAdd(a6, m, c); a7 = Avx512F.FusedMultiplyAdd(a7, m, c);
                a8 = Avx512F.FusedMultiplyAdd(a8, m, c); a9 = Avx512F.FusedMultiplyAdd(a9, m, c);
            }
            return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9);
        }
        if (Fma.IsSupported)
        {
            lanes = 8;
            var m = Vector256.Create(0.999f); var c = Vector256.Create(0.001f);
            Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
            for (long i = 0; i < iters; i++)
            {
                a0 = Fma.MultiplyAdd(a0, m, c); a1 = Fma.MultiplyAdd(a1, m, c);
                a2 = Fma.MultiplyAdd(a2, m, c); a3 = Fma.MultiplyAdd(a3, m, c);
                a4 = Fma.MultiplyAdd(a4, m, c); a5 = Fma.MultiplyAdd(a5, m, c);
                a6 = Fma.MultiplyAdd(a6, m, c); a7 = Fma.MultiplyAdd(a7, m, c);
                a8 = Fma.MultiplyAdd(a8, m, c); a9 = Fma.MultiplyAdd(a9, m, c);
            }
            return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9);
        }
        lanes = 1;
        float s0 = 1, s1 = 1, s2 = 1, s3 = 1, s4 = 1, s5 = 1, s6 = 1, s7 = 1, s8 = 1, s9 = 1;
        for (long i = 0; i < iters; i++)
        {
            s0 = MathF.FusedMultiplyAdd(s0, 0.999f, 0.001f); s1 = MathF.FusedMultiplyAdd(s1, 0.999f, 0.001f);
            s2 = MathF.FusedMultiplyAdd(s2, 0.999f, 0.001f); s3 = MathF.FusedMultiplyAdd(s3, 0.999f, 0.001f);
            s4 = MathF.FusedMultiplyAdd(s4, 0.999f, 0.001f); s5 = MathF.FusedMultiplyAdd(s5, 0.999f, 0.001f);
            s6 = MathF.FusedMultiplyAdd(s6, 0.999f, 0.001f); s7 = MathF.FusedMultiplyAdd(s7, 0.999f, 0.001f);
            s8 = MathF.FusedMultiplyAdd(s8, 0.999f, 0.001f); s9 = MathF.FusedMultiplyAdd(s9, 0.999f, 0.001f);
        }
        return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7 + s8 + s9;
    }
}
