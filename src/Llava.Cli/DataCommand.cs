using System.CommandLine;
using Llava.Training.Synthetic;
using Spectre.Console;

namespace Llava.Cli;

/// <summary>`llava data shapes`: the synthetic visual world the project's micro LLaVA learns from.</summary>
internal static class DataCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--output-dir", "-o") { Description = "Where to write images/ and the LLaVA-format JSON files.", Required = true };
        var train = new Option<int>("--train") { Description = "Training images.", DefaultValueFactory = _ => 20000 };
        var heldOut = new Option<int>("--held-out") { Description = "Held-out images (disjoint scene seeds) for validation and `llava eval shapes`.", DefaultValueFactory = _ => 1000 };
        var questions = new Option<int>("--eval-questions-per-image") { Description = "Evaluation questions per held-out image.", DefaultValueFactory = _ => 7 };
        var size = new Option<int>("--image-size") { Description = "Canvas size in pixels.", DefaultValueFactory = _ => 224 };
        var seed = new Option<int>("--seed") { Description = "Dataset seed (same seed, same bytes).", DefaultValueFactory = _ => 1 };
        var minRounds = new Option<int>("--min-rounds") { Description = "Fewest question rounds per stage-2 conversation.", DefaultValueFactory = _ => 2 };
        var maxRounds = new Option<int>("--max-rounds") { Description = "Most question rounds per stage-2 conversation (at most 7, one per question type).", DefaultValueFactory = _ => 4 };
        var shapes = new Command("shapes", "Draw scenes of 1-4 coloured shapes and write captions (stage 1), multi-turn questions (stage 2) and a held-out eval set.");
        foreach (var o in new Option[] { output, train, heldOut, questions, size, seed, minRounds, maxRounds }) shapes.Options.Add(o);
        shapes.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Cli.Guard(() =>
        {
            var counts = new ShapesDatasetCounts(r.GetValue(train), r.GetValue(heldOut), r.GetValue(questions), r.GetValue(minRounds), r.GetValue(maxRounds));
            var options = new ShapesWorldOptions { CanvasSize = r.GetValue(size) };
            ShapesDatasetResult? result = null;
            ModelLoading.Err.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("drawing scenes", maxValue: counts.Train + counts.HeldOut);
                    result = ShapesDataset.Write(r.GetValue(output)!, counts, r.GetValue(seed), options,
                        new Progress<ShapesDatasetProgress>(p => task.Value = p.ImagesDone), ct);
                    task.Value = task.MaxValue;
                });
            var res = result!;
            Console.WriteLine($"wrote {res.OutputDir}: {res.TrainImages} training + {res.HeldOutImages} held-out images, " +
                $"{res.PretrainRecords} captions, {res.FinetuneRecords} conversations, {res.EvalRecords} eval questions, {res.Words} words, in {res.Elapsed.TotalSeconds:F1}s");
            return 0;
        })));
        var cmd = new Command("data", "Make training data.");
        cmd.Subcommands.Add(shapes);
        return cmd;
    }
}
