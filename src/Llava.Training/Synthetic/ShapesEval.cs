using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Llava.Training.Synthetic;

/// <summary>One eval question: the image (relative to the image folder), the question, its canonical answer and type.</summary>
public sealed record ShapesEvalItem(string Id, string Image, QuestionType Type, string Question, string Answer);

/// <summary>Reads eval.json and accumulates accuracy per question type.</summary>
public sealed class ShapesEvalReport
{
    readonly Dictionary<QuestionType, (int N, int Exact, int Lenient)> _byType = new();

    /// <summary>Loads an eval file written by <see cref="ShapesDataset"/>.</summary>
    public static IReadOnlyList<ShapesEvalItem> Load(string evalJsonPath)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(evalJsonPath));
        var items = new List<ShapesEvalItem>();
        foreach (var e in doc.RootElement.EnumerateArray())
            items.Add(new ShapesEvalItem(
                e.GetProperty("id").GetString()!, e.GetProperty("image").GetString()!,
                ShapeWords.ParseQuestionType(e.GetProperty("type").GetString()!),
                e.GetProperty("question").GetString()!, e.GetProperty("answer").GetString()!));
        return items;
    }

    /// <summary>Scores <paramref name="predicted"/> for <paramref name="item"/> and records it.</summary>
    public ShapesScore Add(ShapesEvalItem item, string predicted)
    {
        var score = ShapesScorer.Score(item.Type, item.Answer, predicted);
        Add(item.Type, score);
        return score;
    }

    public void Add(QuestionType type, ShapesScore score)
    {
        _byType.TryGetValue(type, out var t);
        _byType[type] = (t.N + 1, t.Exact + (score.Exact ? 1 : 0), t.Lenient + (score.Lenient ? 1 : 0));
    }

    public int Count => _byType.Values.Sum(t => t.N);

    /// <summary>Per type: (questions, exact accuracy, lenient accuracy), in <see cref="QuestionType"/> order.</summary>
    public IReadOnlyList<(QuestionType Type, int N, double Exact, double Lenient)> ByType =>
        ShapeWords.QuestionTypes.Where(_byType.ContainsKey)
            .Select(t => (t, _byType[t].N, (double)_byType[t].Exact / _byType[t].N, (double)_byType[t].Lenient / _byType[t].N))
            .ToList();

    public double ExactAccuracy => Count == 0 ? 0 : (double)_byType.Values.Sum(t => t.Exact) / Count;
    public double LenientAccuracy => Count == 0 ? 0 : (double)_byType.Values.Sum(t => t.Lenient) / Count;

    /// <summary>A plain-text table: type, n, exact %, lenient %, then the total.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.AppendLine("type        n      exact   lenient");
        foreach (var (type, n, exact, lenient) in ByType)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"{ShapeWords.Name(type),-10} {n,5} {exact * 100,8:0.0}% {lenient * 100,8:0.0}%"));
        sb.Append(string.Create(CultureInfo.InvariantCulture, $"{"all",-10} {Count,5} {ExactAccuracy * 100,8:0.0}% {LenientAccuracy * 100,8:0.0}%"));
        return sb.ToString();
    }
}
