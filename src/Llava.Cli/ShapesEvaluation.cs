using Llava.Generation;
using Llava.Models.Llava;
using Llava.Training.Synthetic;
using Llava.Vision;

namespace Llava.Cli;

/// <summary>Answers shapes-world eval questions with greedy decoding and scores them (`llava eval shapes`, `llava recipe micro`).</summary>
internal static class ShapesEvaluation
{
    public static ShapesEvalReport Run(LlavaModel model, PromptFormat format, string dataDir, IReadOnlyList<ShapesEvalItem> items,
        ImageAspectMode? aspect, int maxNewTokens, Action<int>? onAnswered, CancellationToken ct,
        Action<ShapesEvalItem, string, ShapesScore>? onScored = null)
    {
        var session = new LlavaSession(model);
        var options = new GenerationOptions { Temperature = 0, MaxNewTokens = maxNewTokens, StopStrings = format.StopStrings };
        var report = new ShapesEvalReport();
        int done = 0;
        foreach (var item in items)
        {
            ct.ThrowIfCancellationRequested();
            var image = session.EncodeImage(ImageDecoder.Decode(Path.Combine(dataDir, "images", item.Image)), aspect);
            session.Prefill(session.Tokenize(format.SingleTurn(item.Question, hasImage: true)), [image]);
            string answer = string.Concat(session.Generate(options, ct).Select(t => t.Text)).Trim();
            var score = report.Add(item, answer);
            onScored?.Invoke(item, answer, score);
            onAnswered?.Invoke(++done);
        }
        return report;
    }
}
