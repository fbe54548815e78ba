using System.Text;

namespace Llava.Training.Synthetic;

/// <summary>Result of scoring one answer: exact and lenient correctness (exact implies lenient).</summary>
public readonly record struct ShapesScore(bool Exact, bool Lenient);

/// <summary>
/// Scores a model's answer against the canonical answer of a shapes-world question.
/// <para><b>Normalisation.</b> Lower-case; every character that is not a letter or digit becomes a space;
/// whitespace collapses; leading/trailing space is dropped. "The triangle is RED!!" → "the triangle is red".</para>
/// <para><b>Exact.</b> The normalised prediction equals the normalised canonical answer.</para>
/// <para><b>Lenient.</b> Each question type has a key vocabulary: color → the six colours; shape → the four kinds;
/// count → number words (no/none/zero/0 all mean zero, one/1, two/2, ... five/5); position → left, right, top,
/// bottom, center (centre and middle count as center); existence → yes, no; size → large, small (big → large,
/// little and tiny → small); describe → all of colours, kinds, sizes and positions. Plurals of kinds count as the
/// kind ("circles" → circle). The prediction is leniently correct when the <i>set</i> of key words it contains equals
/// the set in the canonical answer: every expected key word is present and no other key word of that vocabulary
/// (a contradiction, e.g. "red or blue", "top left") appears. Words outside the type's vocabulary are ignored, so
/// "Red." and "It is red" are right for "The triangle is red.", "3" is right for "There are three shapes.", and
/// "No." is right for "No, there is no green square." For describe, lenient means the same colours, kinds, sizes
/// and positions are mentioned, without checking which attribute goes with which shape.</para>
/// </summary>
public static class ShapesScorer
{
    static readonly Dictionary<string, string> ColorKeys = ShapeWords.Colors.ToDictionary(ShapeWords.Name, ShapeWords.Name);

    static readonly Dictionary<string, string> KindKeys = ShapeWords.Kinds
        .SelectMany(k => new[] { (ShapeWords.Name(k), ShapeWords.Name(k)), (ShapeWords.Plural(k), ShapeWords.Name(k)) })
        .ToDictionary(p => p.Item1, p => p.Item2);

    static readonly Dictionary<string, string> CountKeys = new()
    {
        ["no"] = "zero", ["none"] = "zero", ["zero"] = "zero", ["0"] = "zero",
        ["one"] = "one", ["1"] = "one", ["two"] = "two", ["2"] = "two", ["three"] = "three", ["3"] = "three",
        ["four"] = "four", ["4"] = "four", ["five"] = "five", ["5"] = "five",
    };

    static readonly Dictionary<string, string> PositionKeys = new()
    {
        ["left"] = "left", ["right"] = "right", ["top"] = "top", ["bottom"] = "bottom",
        ["center"] = "center", ["centre"] = "center", ["middle"] = "center",
    };

    static readonly Dictionary<string, string> YesNoKeys = new() { ["yes"] = "yes", ["no"] = "no" };

    static readonly Dictionary<string, string> SizeKeys = new()
    {
        ["large"] = "large", ["big"] = "large", ["small"] = "small", ["little"] = "small", ["tiny"] = "small",
    };

    static readonly Dictionary<string, string> DescribeKeys = new[] { ColorKeys, KindKeys, PositionKeys, SizeKeys }
        .SelectMany(d => d).ToDictionary(p => p.Key, p => p.Value);

    /// <summary>The key vocabulary of a question type: surface word → canonical key.</summary>
    public static IReadOnlyDictionary<string, string> KeyVocabulary(QuestionType type) => type switch
    {
        QuestionType.Color => ColorKeys,
        QuestionType.Shape => KindKeys,
        QuestionType.Count => CountKeys,
        QuestionType.Position => PositionKeys,
        QuestionType.Existence => YesNoKeys,
        QuestionType.Size => SizeKeys,
        QuestionType.Describe => DescribeKeys,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Lower-case, punctuation to spaces, whitespace collapsed.</summary>
    public static string Normalize(string text)
    {
        var sb = new StringBuilder(text.Length);
        bool space = true;
        foreach (char ch in text)
        {
            if (char.IsLetterOrDigit(ch))
            {
                sb.Append(char.ToLowerInvariant(ch));
                space = false;
            }
            else if (!space)
            {
                sb.Append(' ');
                space = true;
            }
        }
        if (sb.Length > 0 && sb[^1] == ' ') sb.Length--;
        return sb.ToString();
    }

    /// <summary>The canonical key words of <paramref name="type"/> that <paramref name="text"/> contains.</summary>
    public static IReadOnlySet<string> KeyWords(QuestionType type, string text)
    {
        var vocab = KeyVocabulary(type);
        var keys = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var word in Normalize(text).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            if (vocab.TryGetValue(word, out var key)) keys.Add(key);
        return keys;
    }

    public static ShapesScore Score(QuestionType type, string expected, string predicted)
    {
        ArgumentNullException.ThrowIfNull(expected);
        predicted ??= "";
        bool exact = Normalize(expected) == Normalize(predicted);
        var want = KeyWords(type, expected);
        bool lenient = exact || (want.Count > 0 && want.SetEquals(KeyWords(type, predicted)));
        return new ShapesScore(exact, lenient);
    }
}
