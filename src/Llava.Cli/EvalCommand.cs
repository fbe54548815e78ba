using System.CommandLine;
using System.Text.Json;
using Llava.Training.Synthetic;
using Spectre.Console;

namespace Llava.Cli;

/// <summary>`llava eval shapes`: held-out accuracy per question type on the synthetic world, greedy decoding.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var data = new Option<string>("--data") { Description = "A `llava data shapes` output directory (uses its eval.json and images/).", Required = true };
        var limit = new Option<int?>("--limit") { Description = "Evaluate only the first N questions." };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Longest answer in tokens (a four-shape description takes about 45).", DefaultValueFactory = _ => 64 };
        var answersFile = new Option<string?>("--answers-file") { Description = "Also write every answer as JSON lines (id, type, question, answer, prediction, exact, lenient), as LLaVA's eval scripts do." };
        var shapes = new Command("shapes", "Answer every held-out question with the model and print exact and lenient accuracy per question type.");
        common.AddTo(shapes);
        foreach (var o in new Option[] { data, limit, maxNew, answersFile }) shapes.Options.Add(o);
        shapes.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Cli.Guard(() =>
        {
            common.ApplyThreads(r);
            string dir = r.GetValue(data)!;
            string evalPath = Path.Combine(dir, "eval.json");
            if (!File.Exists(evalPath)) throw new CliException($"{evalPath} not found (make it with `llava data shapes`)");
            var items = ShapesEvalReport.Load(evalPath);
            if (r.GetValue(limit) is int n) items = items.Take(n).ToList();
            using var model = ModelLoading.Load(common.ResolveModel(r), common.LoadOptions(r), quiet: false);
            var format = Templates.Choose(model, r.GetValue(common.ConvMode), warn: true);
            var aspect = common.Aspect(r);
            ShapesEvalReport? report = null;
            using var answers = r.GetValue(answersFile) is { } af ? new StreamWriter(af) : null;
            void Write(ShapesEvalItem item, string prediction, ShapesScore score) => answers?.WriteLine(JsonSerializer.Serialize(new
            {
                id = item.Id, type = ShapeWords.Name(item.Type), question = item.Question, answer = item.Answer, prediction,
                exact = score.Exact, lenient = score.Lenient,
            }));
            ModelLoading.Err.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("answering", maxValue: items.Count);
                    report = ShapesEvaluation.Run(model, format, dir, items, aspect, r.GetValue(maxNew), n => task.Value = n, ct, Write);
                });
            Console.WriteLine(report!.ToString());
            return 0;
        })));
        var cmd = new Command("eval", "Evaluate a model.");
        cmd.Subcommands.Add(shapes);
        return cmd;
    }
}
