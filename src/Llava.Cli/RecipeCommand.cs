using System.CommandLine;
using System.Diagnostics;
using Llava.Models.Llava;
using Llava.Training.Recipe;
using Llava.Training.Synthetic;
using Spectre.Console;

namespace Llava.Cli;

/// <summary>
/// `llava recipe micro`: trains the project's micro LLaVA from scratch (data → ViT pretraining → LM pretraining →
/// LLaVA stage 1 → stage 2), exports it, and scores it on the held-out shapes questions.
/// </summary>
internal static class RecipeCommand
{
    public static Command Create()
    {
        var work = new Option<string>("--work-dir") { Description = "Where the stages write their data, checkpoints and DONE markers (a rerun reuses finished stages).", DefaultValueFactory = _ => Path.Combine(".recipe", "micro") };
        var output = new Option<string?>("--output-dir", "-o") { Description = "Where the final model goes (llava-hf layout, bf16). Default: no export." };
        var smoke = new Option<bool>("--smoke") { Description = "A few steps per stage: checks the pipeline in about a minute; the model learns nothing." };
        var evalLimit = new Option<int?>("--eval-limit") { Description = "Score only the first N held-out questions (default: all)." };
        var threads = new Option<int?>("--threads", "-t") { Description = "Worker threads (default: all cores)." };
        var seed = new Option<int>("--seed") { Description = "Seed of the data, initialisation and data order.", DefaultValueFactory = _ => 1 };
        var visionSteps = new Option<int?>("--vision-steps") { Description = "ViT pretraining steps (batch 32)." };
        var textSteps = new Option<int?>("--text-steps") { Description = "Language-model pretraining steps." };
        var stage1Steps = new Option<int?>("--stage1-steps") { Description = "Stage 1 (projector) steps." };
        var stage2Steps = new Option<int?>("--stage2-steps") { Description = "Stage 2 (projector + LLM) steps." };
        var until = new Option<string?>("--stop-after") { Description = "Stop after this stage (data, vision, text, stage1) without export or evaluation." };
        until.AcceptOnlyFromAmong("init", "data", "vision", "text", "stage1");
        var visionLabels = new Option<PatchLabels?>("--vision-labels") { Description = "ViT pretraining targets: cell (every patch of a grid cell names its shape) or cover (patches the shape touches)." };
        var visionLr = new Option<double?>("--vision-lr") { Description = "ViT pretraining peak learning rate." };
        var stage2Batch = new Option<int?>("--stage2-batch") { Description = "Stage 2 conversations per step." };
        var stage2Lr = new Option<double?>("--stage2-lr") { Description = "Stage 2 peak learning rate." };
        var textLr = new Option<double?>("--text-lr") { Description = "Language-model pretraining peak learning rate." };
        var extraRounds = new Option<int?>("--extra-rounds") { Description = "Extra stage-2 question rounds per image, of the types that find a shape by its kind or notice it is absent (0..16)." };
        var independent = new Option<bool?>("--independent-rounds") { Description = "Stage-2 conversations whose rounds never name a kind, colour or position an earlier round named, description last (true|false)." };
        var trainImages = new Option<int?>("--train-images") { Description = "Shapes-world training images (one stage-2 conversation each); enough for steps × batch means no conversation repeats." };
        var imageSize = new Option<int?>("--image-size") { Description = "Image side in pixels (the shapes world is drawn at this size)." };
        var patchSize = new Option<int?>("--patch-size") { Description = "ViT patch side in pixels; (image / patch)² image tokens reach the language model." };
        var visionHidden = new Option<int?>("--vision-hidden") { Description = "ViT width." };
        var visionMlp = new Option<int?>("--vision-mlp") { Description = "ViT MLP width." };
        var micro = new Command("micro", "Train the micro LLaVA (ViT 128×4 at 112 px, mlp2x_gelu, LLaMA 256×4 with the LLaMA-2 tokenizer) from scratch on the shapes world, then evaluate it.");
        foreach (var o in new Option[] { work, output, smoke, evalLimit, threads, seed, visionSteps, textSteps, stage1Steps, stage2Steps, until, visionLabels, visionLr, stage2Lr, stage2Batch, textLr, extraRounds, independent, trainImages, imageSize, patchSize, visionHidden, visionMlp }) micro.Options.Add(o);
        micro.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Cli.Guard(() =>
        {
            if (r.GetValue(threads) is int n)
            {
                if (n < 1) throw new CliException("--threads must be at least 1");
                Llava.Tensors.Workers.SetThreadCount(n);
            }
            string workDir = r.GetValue(work)!;
            var options = r.GetValue(smoke) ? MicroRecipeOptions.Smoke(workDir) : new MicroRecipeOptions { WorkDir = workDir };
            options = options with { Seed = r.GetValue(seed), StopAfter = r.GetValue(until) };
            if (r.GetValue(visionSteps) is int vs) options = options with { Vision = options.Vision with { Steps = vs } };
            if (r.GetValue(visionLabels) is PatchLabels vl) options = options with { Vision = options.Vision with { Labels = vl } };
            if (r.GetValue(visionLr) is double vlr) options = options with { Vision = options.Vision with { LearningRate = vlr } };
            if (r.GetValue(textSteps) is int ts) options = options with { Text = options.Text with { Steps = ts, Samples = Math.Max(options.Text.Samples, ts * options.Text.BatchSize) } };
            if (r.GetValue(stage1Steps) is int s1) options = options with { Stage1 = options.Stage1 with { Steps = s1 } };
            if (r.GetValue(stage2Steps) is int s2) options = options with { Stage2 = options.Stage2 with { Steps = s2 } };
            if (r.GetValue(stage2Batch) is int b2) options = options with { Stage2 = options.Stage2 with { BatchSize = b2 } };
            if (r.GetValue(stage2Lr) is double lr2) options = options with { Stage2 = options.Stage2 with { LearningRate = lr2 } };
            if (r.GetValue(textLr) is double tlr) options = options with { Text = options.Text with { LearningRate = tlr } };
            if (r.GetValue(extraRounds) is int er) options = options with { ExtraRounds = er };
            if (r.GetValue(trainImages) is int ti) options = options with { TrainImages = ti };
            if (r.GetValue(imageSize) is int isz) options = options with { Model = options.Model with { ImageSize = isz } };
            if (r.GetValue(patchSize) is int psz) options = options with { Model = options.Model with { PatchSize = psz } };
            if (r.GetValue(visionHidden) is int vh) options = options with { Model = options.Model with { VisionHidden = vh } };
            if (r.GetValue(visionMlp) is int vm) options = options with { Model = options.Model with { VisionIntermediate = vm } };
            if (r.GetValue(independent) is bool ir) options = options with { IndependentRounds = ir };
            var err = ModelLoading.Err;
            var clock = Stopwatch.StartNew();
            var recipe = new MicroLlavaRecipe(options)
            {
                OnMessage = m => err.MarkupLine($"[grey]{Markup.Escape(m)}[/]"),
                OnStageDone = s => err.MarkupLine(s.Reused
                    ? $"[grey]{s.Name}: reused ({s.Seconds:F0} s when made): {Markup.Escape(s.Summary)}[/]"
                    : $"[green]{s.Name}[/] {s.Seconds:F0} s: {Markup.Escape(s.Summary)}"),
            };
            MicroRecipeResult result;
            if (Console.IsErrorRedirected)
            {
                string? last = null; var lastPrint = Stopwatch.StartNew();
                recipe.OnProgress = p =>
                {
                    if (p.Stage == last && p.Step != p.Total && lastPrint.Elapsed.TotalSeconds < 10) return;
                    last = p.Stage; lastPrint.Restart();
                    err.WriteLine($"{p.Stage} {p.Step}/{p.Total} {p.Detail}");
                };
                result = recipe.Run(ct);
            }
            else
            {
                MicroRecipeResult? res = null;
                err.Progress().AutoClear(true)
                    .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                    .Start(ctx =>
                    {
                        ProgressTask? task = null; string? stage = null;
                        recipe.OnProgress = p =>
                        {
                            if (p.Stage != stage) { task?.StopTask(); task = ctx.AddTask(p.Stage, maxValue: p.Total); stage = p.Stage; }
                            task!.MaxValue = p.Total;
                            task.Value = p.Step;
                            task.Description = $"{p.Stage} {p.Step}/{p.Total} {Markup.Escape(p.Detail)}";
                        };
                        res = recipe.Run(ct);
                    });
                result = res!;
            }
            if (!result.Complete)
            {
                err.MarkupLine($"stopped after {result.Stages[^1].Name} ({result.Seconds:F0} s of stage time)");
                return 0;
            }
            err.MarkupLine($"[green]trained[/] in {result.Seconds:F0} s of stage time ({clock.Elapsed.TotalSeconds:F0} s this run)");

            string modelDir = result.ModelDir;
            var loadOptions = new LlavaLoadOptions { VisionTower = result.VisionDir };
            if (r.GetValue(output) is string outDir)
            {
                var exportClock = Stopwatch.StartNew();
                RecipeExport.Export(result, outDir);
                err.MarkupLine($"[green]exported[/] {Markup.Escape(outDir)} in {exportClock.Elapsed.TotalSeconds:F1} s ({RecipeExport.Bytes(outDir) / 1e6:F1} MB)");
                modelDir = outDir;
                loadOptions = new LlavaLoadOptions();
            }

            var items = ShapesEvalReport.Load(Path.Combine(result.DataDir, "eval.json"));
            if (r.GetValue(evalLimit) is int limit) items = items.Take(limit).ToList();
            using var model = ModelLoading.Load(modelDir, loadOptions, quiet: true);
            var format = Templates.Choose(model, null, warn: false);
            var evalClock = Stopwatch.StartNew();
            var report = ShapesEvaluation.Run(model, format, result.DataDir, items, null, 64, null, ct);
            err.MarkupLine($"[grey]evaluated {items.Count} held-out questions in {evalClock.Elapsed.TotalSeconds:F0} s[/]");
            Console.WriteLine(report.ToString());
            err.MarkupLine($"[green]recipe done[/] in {clock.Elapsed.TotalSeconds:F0} s");
            return 0;
        })));
        var cmd = new Command("recipe", "Train a model end to end with a fixed recipe.");
        cmd.Subcommands.Add(micro);
        return cmd;
    }
}
