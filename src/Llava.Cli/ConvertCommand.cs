using System.CommandLine;
using System.Diagnostics;
using Llava.Models.Gguf;
using Llava.Models.Llava;
using Spectre.Console;

namespace Llava.Cli;

/// <summary>
/// `llava convert`: writes llama.cpp's LLaVA pair from a checkpoint: the text model
/// (<c>&lt;name&gt;-&lt;type&gt;.gguf</c>, F32/F16/BF16 or a llama.cpp quantization such as q8_0, q4_0, q4_k_m) and the
/// vision projector (<c>mmproj-&lt;name&gt;-f16.gguf</c>). Tensors stream one by one (the checkpoint stays memory-mapped);
/// a progress bar per file (tensor, bytes) goes to stderr, the summary to stdout.
/// </summary>
internal static class ConvertCommand
{
    static string TypeList => string.Join(", ", GgufOutputTypes.All.Select(t => t.Name()));

    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "Model directory (llava-hf or original LLaVA layout).", Required = true };
        var visionTower = new Option<string?>("--vision-tower") { Description = "CLIP checkpoint directory for an original-layout model (default: mm_vision_tower resolved as a local path)." };
        var outType = new Option<string>("--outtype") { Description = $"Text model type: {TypeList}. Default: f16.", DefaultValueFactory = _ => "f16" };
        var outDir = new Option<string>("--out-dir", "-o") { Description = "Directory for the two .gguf files (created if missing).", Required = true };
        var mmprojType = new Option<string>("--mmproj-type") { Description = "Vision projector type: f16 (llama.cpp's LLaVA files) or f32.", DefaultValueFactory = _ => "f16" };
        var pure = new Option<bool>("--pure") { Description = "As llama-quantize --pure: every matrix in the base type (no Q6_K output, no mix rules)." };
        var threads = new Option<int?>("--threads", "-t") { Description = "Worker threads for quantization (default: all cores)." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "List every tensor with its type and size." };

        var cmd = new Command("convert", "Write llama.cpp GGUF files (text model + mmproj) from a LLaVA checkpoint, optionally quantized (q8_0, q4_0, q4_k_m, ...).");
        foreach (var o in new Option[] { model, visionTower, outType, outDir, mmprojType, pure, threads, verbose }) cmd.Options.Add(o);

        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Cli.Guard(() =>
        {
            if (r.GetValue(threads) is int n)
            {
                if (n < 1) throw new CliException("--threads must be at least 1");
                Llava.Tensors.Workers.SetThreadCount(n);
            }
            var type = GgufOutputTypes.TryParse(r.GetValue(outType))
                ?? throw new CliException($"--outtype '{r.GetValue(outType)}' is not supported; choose one of {TypeList}");
            var mtype = GgufOutputTypes.TryParse(r.GetValue(mmprojType)) is { } m && m is GgufOutputType.F16 or GgufOutputType.F32 ? m
                : throw new CliException($"--mmproj-type must be f16 or f32, not '{r.GetValue(mmprojType)}' (llama.cpp's LLaVA projector files are not quantized)");
            string modelDir = r.GetValue(model)!;
            if (File.Exists(modelDir)) throw new CliException($"--model must be a checkpoint directory, not a file: {modelDir}");
            if (!Directory.Exists(modelDir)) throw new CliException($"model directory not found: {modelDir}");
            string dir = r.GetValue(outDir)!;
            if (File.Exists(dir)) throw new CliException($"--out-dir is a file: {dir}");
            if (r.GetValue(pure) && type.IsFloat()) throw new CliException($"--pure applies to quantized types, not {type.Name()}");

            var config = LlavaConfig.Load(modelDir, r.GetValue(visionTower));
            var baseOptions = new GgufExportOptions { OutputType = type, MmprojType = mtype, Pure = r.GetValue(pure), VisionTower = r.GetValue(visionTower) };
            var (textPath, mmprojPath) = GgufExporter.OutputPaths(config.ModelName, dir, baseOptions);
            Directory.CreateDirectory(dir);
            var err = ModelLoading.Err;
            err.MarkupLine($"[grey]converting {Markup.Escape(config.ModelName)} ({config.Layout}) to {type.Name()} + mmproj {mtype.Name()}[/]");

            var sw = Stopwatch.StartNew();
            GgufFileReport text, mmproj;
            if (Console.IsErrorRedirected)
            {
                // Logs and scripts: no live display (--verbose lists the tensors in the summary).
                var options = baseOptions with { Progress = _ => ct.ThrowIfCancellationRequested() };
                text = GgufExporter.ExportTextModel(modelDir, textPath, options);
                mmproj = GgufExporter.ExportMmproj(modelDir, mmprojPath, options);
            }
            else
            {
                (text, mmproj) = WithProgress(err, modelDir, textPath, mmprojPath, baseOptions, ct);
            }

            PrintSummary(text, mmproj, sw.Elapsed, r.GetValue(verbose));
            return 0;
        })));
        return cmd;
    }

    static (GgufFileReport, GgufFileReport) WithProgress(IAnsiConsole err, string modelDir, string textPath, string mmprojPath, GgufExportOptions baseOptions, CancellationToken ct)
    {
        GgufFileReport? text = null, mmproj = null;
        err.Progress()
            .AutoClear(true)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var textTask = ctx.AddTask(Path.GetFileName(textPath), autoStart: false);
                var mmTask = ctx.AddTask(Path.GetFileName(mmprojPath), autoStart: false);
                Action<GgufExportProgress> Track(ProgressTask task) => p =>
                {
                    ct.ThrowIfCancellationRequested();
                    if (!task.IsStarted) task.StartTask();
                    task.MaxValue = Math.Max(1, p.BytesTotal);
                    task.Value = p.BytesDone;
                    task.Description = Markup.Escape($"{Path.GetFileName(p.Path)} [{p.TensorIndex}/{p.TensorCount}] {p.Tensor} → {p.Type}");
                };
                text = GgufExporter.ExportTextModel(modelDir, textPath, baseOptions with { Progress = Track(textTask) });
                textTask.Description = Markup.Escape(Path.GetFileName(textPath));
                textTask.Value = textTask.MaxValue;
                textTask.StopTask();
                mmproj = GgufExporter.ExportMmproj(modelDir, mmprojPath, baseOptions with { Progress = Track(mmTask) });
                mmTask.Description = Markup.Escape(Path.GetFileName(mmprojPath));
                mmTask.Value = mmTask.MaxValue;
                mmTask.StopTask();
            });
        return (text!, mmproj!);
    }

    internal static string Bytes(long b) => b switch
    {
        >= 1L << 30 => $"{b / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{b / (double)(1L << 20):F2} MiB",
        >= 1L << 10 => $"{b / 1024.0:F1} KiB",
        _ => $"{b} B",
    };

    static void PrintSummary(GgufFileReport text, GgufFileReport mmproj, TimeSpan elapsed, bool verbose)
    {
        var o = Console.Out;
        foreach (var (label, f) in new[] { ("text model", text), ("mmproj", mmproj) })
        {
            o.WriteLine($"{label}: {f.Path}");
            o.WriteLine($"  {Bytes(f.FileBytes)} ({f.FileBytes:N0} bytes), {f.Parameters:N0} parameters, {f.BitsPerWeight:F2} bits/weight, from {Bytes(f.SourceBytes)} of checkpoint weights, {f.Elapsed.TotalSeconds:F2}s");
            o.WriteLine($"  {f.Tensors.Count} tensors: {string.Join(", ", f.TypeCounts.Select(c => $"{c.Type} ×{c.Count}"))}");
            var fallbacks = f.Fallbacks.ToList();
            if (fallbacks.Count > 0)
            {
                o.WriteLine($"  {fallbacks.Count} tensor(s) took a shape fallback (llama.cpp's rule; F16 where llama.cpp has none):");
                foreach (var g in fallbacks.GroupBy(t => t.Fallback))
                    o.WriteLine($"    {g.Key}: {string.Join(", ", g.Select(t => t.Name))}");
            }
            if (verbose)
                foreach (var t in f.Tensors)
                    o.WriteLine($"    {t.Name,-32} {t.Type,-5} [{string.Join(", ", t.Dimensions)}] {Bytes(t.Bytes)}");
        }
        long total = text.FileBytes + mmproj.FileBytes, source = text.SourceBytes + mmproj.SourceBytes;
        o.WriteLine($"converted in {elapsed.TotalSeconds:F2}s: {Bytes(source)} of weights → {Bytes(total)} in 2 files");
    }
}
