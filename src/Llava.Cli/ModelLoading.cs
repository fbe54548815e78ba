using System.Diagnostics;
using Llava.Models.Llava;
using Spectre.Console;

namespace Llava.Cli;

/// <summary>Loads a model with a progress display on stderr, so stdout stays clean for answers and JSON.</summary>
internal static class ModelLoading
{
    public static readonly IAnsiConsole Err = CreateErr();

    static IAnsiConsole CreateErr()
    {
        bool plain = Console.IsErrorRedirected || Environment.GetEnvironmentVariable("NO_COLOR") is { Length: > 0 };
        var c = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(Console.Error),
            Ansi = plain ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = plain ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
        });
        // Redirected (logs, scripts, tests): one message per line, never wrapped at 80 columns.
        if (Console.IsErrorRedirected) c.Profile.Width = 4096;
        return c;
    }

    public static LlavaModel Load(string path, LlavaLoadOptions options, bool quiet)
    {
        // An unmerged LoRA adapter + --model-base: merged at load time, as LLaVA's builder does (merge_and_unload).
        if (Directory.Exists(path) && File.Exists(Path.Combine(path, "adapter_config.json")))
        {
            if (options.ModelBase is null) throw new CliException($"{path} is a LoRA adapter: pass --model-base with the model it was trained on");
            var merged = Directory.CreateTempSubdirectory("llava-lora-merged-").FullName;
            AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(merged, true); } catch (IOException) { } };
            if (!quiet) Err.MarkupLine($"[grey]merging LoRA adapter {Markup.Escape(path)} into {Markup.Escape(options.ModelBase)}[/]");
            Llava.Training.Trainer.ModelExport.MergeLora(path, options.ModelBase, merged);
            path = merged;
            options = options with { ModelBase = null };
        }
        var sw = Stopwatch.StartNew();
        LlavaModel? model = null;
        if (quiet || Console.IsErrorRedirected)
        {
            model = LlavaModel.Load(path, options);
        }
        else
        {
            Err.Progress()
                .AutoClear(true)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask($"loading {Path.GetFileName(Path.GetFullPath(path).TrimEnd('/'))}", maxValue: 4);
                    model = LlavaModel.Load(path, options, (step, total, what) =>
                    {
                        task.Description = $"loading: {what}";
                        task.MaxValue = total;
                        task.Value = step;
                    });
                    task.Value = task.MaxValue;
                });
        }
        if (!quiet)
            Err.MarkupLine($"[grey]loaded {Markup.Escape(model!.Config.ModelName)} ({model.Config.Layout}, {model.Summary.Parameters / 1e6:F1}M parameters, {model.Summary.Bytes / 1048576.0:F1} MiB mapped" +
                (model.QuantizedBytes > 0 ? $", {model.QuantizedBytes / 1048576.0:F1} MiB quantized in memory" : "") + $") in {sw.Elapsed.TotalSeconds:F2}s[/]");
        return model!;
    }
}
