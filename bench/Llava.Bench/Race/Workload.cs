using System.Diagnostics;

namespace Llava.Bench.Race;

/// <summary>What both engines are given: the same token ids, image and prompt text, timed the same way.</summary>
static class Workload
{
    public const int PromptTokens = 512, DecodeTokens = 128, ContextSize = 2048;

    /// <summary>The LLaVA query for time-to-first-token: one image and a ≈ 35-token question in the vicuna_v1 template (79 text tokens in all).</summary>
    public const string Question =
        "What is unusual about this image? Describe every object you can see, where each one is, what colour it is, " +
        "and explain why the scene might look strange to a visitor.";

    public static string LlavaPrompt(string imageMarker) =>
        "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, " +
        $"and polite answers to the human's questions. USER: {imageMarker}\n{Question} ASSISTANT:";

    /// <summary>BOS then 511 seeded ordinary-piece ids.</summary>
    public static int[] PromptIds()
    {
        var r = new Random(512);
        var ids = new int[PromptTokens];
        ids[0] = 1;
        for (int i = 1; i < ids.Length; i++) ids[i] = r.Next(259, 32000);
        return ids;
    }

    /// <summary>A 336×336 RGB test pattern (no resize needed by either engine's preprocessing).</summary>
    public static byte[] ImageRgb()
    {
        const int n = RaceShape.ImageSize;
        var px = new byte[n * n * 3];
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
            {
                int o = (y * n + x) * 3;
                px[o] = (byte)(x * 255 / n); px[o + 1] = (byte)(y * 255 / n); px[o + 2] = (byte)(x ^ y);
            }
        return px;
    }

    public static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    /// <summary>
    /// One warm-up (unless the code path is already warm: TTFT runs after the image and prefill runs), then
    /// <paramref name="runs"/> timed runs of <paramref name="timed"/> (which returns the seconds it measured).
    /// </summary>
    public static double[] Runs(int runs, Func<double> timed, string what, bool warmup = true)
    {
        if (warmup) timed();
        var t = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            t[i] = timed();
            Console.Error.WriteLine($"    {what} run {i + 1}/{runs}: {t[i]:F3} s");
        }
        return t;
    }

    public static double Median(double[] xs)
    {
        var s = xs.OrderBy(x => x).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    public static double Time(Action a)
    {
        var sw = Stopwatch.StartNew();
        a();
        return sw.Elapsed.TotalSeconds;
    }

    /// <summary>Peak resident set (VmHWM) of this process in MiB: mapped weights that were touched count, as for both engines.</summary>
    public static double PeakRssMiB()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:"))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
        return double.NaN;
    }
}

/// <summary>One engine's measurements (seconds per run; the medians are derived).</summary>
sealed record EngineResult
{
    public required string Engine { get; init; }
    public required int Threads { get; init; }
    public double LoadSeconds { get; init; }
    public required double[] PrefillSeconds { get; init; }
    public required double[] DecodeSeconds { get; init; }
    public required double[] ImageSeconds { get; init; }
    public required double[] TtftSeconds { get; init; }
    public int TtftPositions { get; init; }
    public double PeakRssMiB { get; init; }
    public string Notes { get; init; } = "";

    public double PrefillTokensPerSecond => Workload.PromptTokens / Workload.Median(PrefillSeconds);
    public double DecodeTokensPerSecond => Workload.DecodeTokens / Workload.Median(DecodeSeconds);
    public double ImageEncodeSeconds => Workload.Median(ImageSeconds);
    public double Ttft => Workload.Median(TtftSeconds);
}
