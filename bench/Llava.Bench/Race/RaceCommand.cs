using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Llava.Formats.Gguf;
using Llava.Models.Gguf;

namespace Llava.Bench.Race;

/// <summary>
/// `race`: our engine against llama.cpp on the same synthetic GGUF pair, each engine in its own child process (so
/// peak RSS is per engine), medians of several runs, each figure also as a fraction of the machine's ceiling.
/// <code>
/// race --shape tiny|1b|7b --type f16|q8_0|q4_0|q4_k [--threads N] [--runs R] [--json FILE] [--cache DIR] [--measure-limits]
/// </code>
/// --measure-limits re-measures the machine's ceilings instead of reading them from the cache.
/// The child is the same binary: <c>race --engine ours|llamacpp --text F --mmproj F --threads N --runs R</c>; it prints
/// one line <c>RESULT {json}</c> on stdout.
/// </summary>
static class RaceCommand
{
    const string ResultPrefix = "RESULT ";

    public static int Run(string[] args)
    {
        string shapeName = "tiny", typeName = "q4_0";
        string? json = null, cache = null, engine = null, text = null, mmproj = null;
        int threads = Environment.ProcessorCount, runs = 3;
        bool remeasure = false;
        for (int i = 1; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--shape": shapeName = Next(); break;
                case "--type": typeName = Next(); break;
                case "--threads": threads = int.Parse(Next()); break;
                case "--runs": runs = int.Parse(Next()); break;
                case "--json": json = Next(); break;
                case "--cache": cache = Next(); break;
                case "--measure-limits": remeasure = true; break;
                case "--engine": engine = Next(); break;
                case "--text": text = Next(); break;
                case "--mmproj": mmproj = Next(); break;
                case "--help" or "-h":
                    Console.WriteLine("usage: Llava.Bench race --shape tiny|1b|7b --type f16|q8_0|q4_0|q4_k [--threads N] [--runs R] [--json FILE] [--cache DIR] [--measure-limits]");
                    return 0;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        if (runs < 3) throw new ArgumentException("--runs must be at least 3 (medians of at least 3 runs)");
        if (engine is not null)
            return Child(engine, text ?? throw new ArgumentException("--text"), mmproj ?? throw new ArgumentException("--mmproj"), threads, runs);

        var shape = RaceShape.Parse(shapeName);
        var type = GgufOutputTypes.TryParse(typeName) ?? throw new ArgumentException($"--type {typeName}: unknown");
        if (type is not (GgufOutputType.F16 or GgufOutputType.Q8_0 or GgufOutputType.Q4_0 or GgufOutputType.Q4_K))
            throw new ArgumentException("--type must be f16, q8_0, q4_0 or q4_k");
        cache ??= DefaultCache();
        Directory.CreateDirectory(cache);
        // The cache is never committed: it ignores itself.
        var ignore = Path.Combine(cache, ".gitignore");
        if (!File.Exists(ignore)) File.WriteAllText(ignore, "*\n");
        Llava.Tensors.Workers.SetThreadCount(threads);

        string commandLine = "dotnet run -c Release --project bench/Llava.Bench -- " + string.Join(' ', args);
        var load0 = LoadAverage();
        var limits = MachineLimits.Get(cache, threads, remeasure);
        var files = SyntheticLlava.Ensure(shape, type, cache);
        long bytesPerToken = WeightBytesPerToken(files.TextModel, out long textBytes);

        var results = new List<EngineResult>();
        foreach (var e in new[] { "ours", "llamacpp" })
            results.Add(RunChild(e, files, threads, runs));
        var load1 = LoadAverage();
        var ours = results[0];
        var cpp = results[1];

        var w = Console.Out;
        w.WriteLine();
        w.WriteLine($"race: shape {shape.Name} (hidden {shape.Hidden}, {shape.Layers} layers, {shape.Heads}/{shape.KvHeads} heads, ffn {shape.Ffn}, vocab {shape.Vocab}), text {type.Name()} " +
                    $"{textBytes / 1e9:F2} GB ({bytesPerToken / 1e6:F0} MB of weights read per token), mmproj ViT-L/14-336 f16, {threads} threads, median of {runs} runs");
        w.WriteLine($"machine: {Environment.ProcessorCount} cores, {limits.Cpu}, {MemTotalGiB():F0} GiB; limits at {threads} threads: read {limits.ReadGBps:F1} GB/s, " +
                    $"f32 FMA peak {limits.FmaGflops:F0} GFLOP/s ({limits.VectorBits}-bit; measured {limits.MeasuredAt} at load average {limits.LoadAverage}); load average during the race {load0} → {load1}");
        var rows = new List<JsonObject>();
        foreach (var r in results)
        {
            w.WriteLine();
            w.WriteLine($"{r.Engine} (load {r.LoadSeconds:F1} s)");
            w.WriteLine($"  {"metric",-26} {"median",12} {"runs",-34} {"of machine limit",-30}");
            double decodeGBps = r.DecodeTokensPerSecond * bytesPerToken / 1e9;
            double prefillGflops = shape.PrefillFlops(Workload.PromptTokens) / Workload.Median(r.PrefillSeconds) / 1e9;
            double imageGflops = shape.ImageFlops() / r.ImageEncodeSeconds / 1e9;
            w.WriteLine($"  {"decode (tokens/s)",-26} {r.DecodeTokensPerSecond,12:F2} {Runs(r.DecodeSeconds.Select(s => Workload.DecodeTokens / s)),-34} {decodeGBps:F1} GB/s = {decodeGBps / limits.ReadGBps:P0} of read bandwidth");
            w.WriteLine($"  {"prefill 512 (tokens/s)",-26} {r.PrefillTokensPerSecond,12:F1} {Runs(r.PrefillSeconds.Select(s => Workload.PromptTokens / s)),-34} {prefillGflops:F1} GFLOP/s = {prefillGflops / limits.FmaGflops:P0} of FMA peak");
            w.WriteLine($"  {"image encode (s)",-26} {r.ImageEncodeSeconds,12:F3} {Runs(r.ImageSeconds),-34} {imageGflops:F1} GFLOP/s = {imageGflops / limits.FmaGflops:P0} of FMA peak");
            w.WriteLine($"  {"time to first token (s)",-26} {r.Ttft,12:F3} {Runs(r.TtftSeconds),-34} image + {r.TtftPositions} positions");
            w.WriteLine($"  {"peak RSS (MiB)",-26} {r.PeakRssMiB,12:F0}");
            rows.Add(new JsonObject
            {
                ["engine"] = r.Engine,
                ["threads"] = r.Threads,
                ["load_seconds"] = r.LoadSeconds,
                ["decode_tokens_per_second"] = r.DecodeTokensPerSecond,
                ["decode_seconds_runs"] = Arr(r.DecodeSeconds),
                ["decode_weight_gbps"] = decodeGBps,
                ["decode_fraction_of_bandwidth"] = decodeGBps / limits.ReadGBps,
                ["prefill_tokens_per_second"] = r.PrefillTokensPerSecond,
                ["prefill_seconds_runs"] = Arr(r.PrefillSeconds),
                ["prefill_gflops"] = prefillGflops,
                ["prefill_fraction_of_fma_peak"] = prefillGflops / limits.FmaGflops,
                ["image_encode_seconds"] = r.ImageEncodeSeconds,
                ["image_seconds_runs"] = Arr(r.ImageSeconds),
                ["image_gflops"] = imageGflops,
                ["image_fraction_of_fma_peak"] = imageGflops / limits.FmaGflops,
                ["ttft_seconds"] = r.Ttft,
                ["ttft_seconds_runs"] = Arr(r.TtftSeconds),
                ["ttft_positions"] = r.TtftPositions,
                ["peak_rss_mib"] = r.PeakRssMiB,
                ["notes"] = r.Notes,
            });
        }

        double rDecode = ours.DecodeTokensPerSecond / cpp.DecodeTokensPerSecond;
        double rPrefill = ours.PrefillTokensPerSecond / cpp.PrefillTokensPerSecond;
        double rImage = cpp.ImageEncodeSeconds / ours.ImageEncodeSeconds;
        double rTtft = cpp.Ttft / ours.Ttft;
        double rRss = ours.PeakRssMiB / cpp.PeakRssMiB;
        w.WriteLine();
        w.WriteLine("ours ÷ llama.cpp (decode, prefill: tokens/s ratio; image, ttft: llama.cpp seconds ÷ ours, so > 1 = ours faster; RSS: ours ÷ llama.cpp, < 1 = ours smaller)");
        w.WriteLine($"  decode {rDecode:F2}   prefill {rPrefill:F2}   image {rImage:F2}   ttft {rTtft:F2}   peak RSS {rRss:F2}");

        if (json is not null)
        {
            var doc = new JsonObject
            {
                ["command"] = commandLine,
                ["date_utc"] = DateTime.UtcNow.ToString("u"),
                ["shape"] = new JsonObject
                {
                    ["name"] = shape.Name, ["vocab"] = shape.Vocab, ["hidden"] = shape.Hidden, ["layers"] = shape.Layers,
                    ["heads"] = shape.Heads, ["kv_heads"] = shape.KvHeads, ["ffn"] = shape.Ffn,
                },
                ["type"] = type.Name(),
                ["text_model"] = files.TextModel,
                ["text_model_bytes"] = textBytes,
                ["mmproj"] = files.Mmproj,
                ["weight_bytes_per_token"] = bytesPerToken,
                ["prefill_flops_512"] = shape.PrefillFlops(Workload.PromptTokens),
                ["image_flops"] = shape.ImageFlops(),
                ["workload"] = new JsonObject
                {
                    ["prompt_tokens"] = Workload.PromptTokens, ["decode_tokens"] = Workload.DecodeTokens,
                    ["context"] = Workload.ContextSize, ["image"] = "336x336 RGB", ["llava_prompt"] = Workload.LlavaPrompt("<image>"), ["runs"] = runs,
                },
                ["machine"] = new JsonObject
                {
                    ["cores"] = Environment.ProcessorCount, ["cpu"] = limits.Cpu, ["mem_gib"] = MemTotalGiB(),
                    ["threads"] = threads, ["read_gbps"] = limits.ReadGBps, ["fma_peak_gflops"] = limits.FmaGflops,
                    ["vector_bits"] = limits.VectorBits, ["limits_measured_at"] = limits.MeasuredAt, ["limits_load_average"] = limits.LoadAverage,
                    ["load_average_start"] = load0, ["load_average_end"] = load1,
                },
                ["engines"] = new JsonArray(rows.ToArray()),
                ["ratio"] = new JsonObject { ["decode"] = rDecode, ["prefill"] = rPrefill, ["image"] = rImage, ["ttft"] = rTtft, ["peak_rss"] = rRss },
            };
            File.WriteAllText(json, doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            w.WriteLine($"wrote {json}");
        }
        w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ratio decode={rDecode:F2} prefill={rPrefill:F2} image={rImage:F2} ttft={rTtft:F2}"));
        return 0;
    }

    static string Runs(IEnumerable<double> xs) => "[" + string.Join(", ", xs.Select(x => x.ToString(x >= 100 ? "F0" : x >= 10 ? "F1" : "F3", CultureInfo.InvariantCulture))) + "]";
    static JsonArray Arr(double[] xs) => new(xs.Select(x => (JsonNode)x).ToArray());

    static string DefaultCache()
    {
        // bench/.cache next to this project, found from the working directory (the repository root or bench/).
        for (var d = new DirectoryInfo(Directory.GetCurrentDirectory()); d is not null; d = d.Parent)
            if (Directory.Exists(Path.Combine(d.FullName, "bench", "Llava.Bench"))) return Path.Combine(d.FullName, "bench", ".cache");
        return Path.Combine(Directory.GetCurrentDirectory(), "bench", ".cache");
    }

    /// <summary>Bytes of weights one decode step reads: every tensor except token_embd, of which one row.</summary>
    static long WeightBytesPerToken(string path, out long total)
    {
        using var f = GgufFile.Open(path);
        long sum = 0;
        total = 0;
        foreach (var t in f.Tensors)
        {
            total += t.ByteSize;
            sum += t.Name == "token_embd.weight" ? t.ByteSize / t.Dimensions[1] : t.ByteSize;
        }
        return sum;
    }

    static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "?"; }
    }

    static double MemTotalGiB()
    {
        foreach (var line in File.ReadLines("/proc/meminfo"))
            if (line.StartsWith("MemTotal:")) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1048576.0;
        return double.NaN;
    }

    static EngineResult RunChild(string engine, SyntheticLlava.Files files, int threads, int runs)
    {
        Console.Error.WriteLine($"[race] {engine}: child process");
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        var psi = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(typeof(RaceCommand).Assembly.Location);
        foreach (var a in new[] { "race", "--engine", engine, "--text", files.TextModel, "--mmproj", files.Mmproj,
                                  "--threads", threads.ToString(), "--runs", runs.ToString() })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string? result = null;
        while (p.StandardOutput.ReadLine() is { } line)
        {
            if (line.StartsWith(ResultPrefix)) result = line[ResultPrefix.Length..];
            else Console.Error.WriteLine(line);
        }
        p.WaitForExit();
        if (p.ExitCode != 0 || result is null) throw new InvalidOperationException($"the {engine} child exited with {p.ExitCode} and no result");
        return JsonSerializer.Deserialize<EngineResult>(result)!;
    }

    static int Child(string engine, string text, string mmproj, int threads, int runs)
    {
        var r = engine switch
        {
            "ours" => OursEngine.Run(text, mmproj, threads, runs),
            "llamacpp" or "llama.cpp" => LlamaCppEngine.Run(text, mmproj, threads, runs),
            _ => throw new ArgumentException($"--engine {engine}: ours or llamacpp"),
        };
        Console.Out.WriteLine(ResultPrefix + JsonSerializer.Serialize(r));
        return 0;
    }
}
