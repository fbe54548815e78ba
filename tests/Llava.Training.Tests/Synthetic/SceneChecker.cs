using System.Text.RegularExpressions;
using Llava.Training.Synthetic;

namespace Llava.Tests.Synthetic;

/// <summary>
/// An independent model of the shapes world for the tests: its own word tables and its own reading of every
/// question template, so that it does not share code with the generator it checks.
/// </summary>
public sealed record TShape(string Kind, string Color, string Size, string Position);

public static partial class SceneChecker
{
    public static readonly string[] Kinds = ["circle", "square", "triangle", "star"];
    public static readonly string[] Colors = ["red", "green", "blue", "yellow", "purple", "orange"];
    public static readonly Dictionary<string, string> PhraseOf = new()
    {
        ["left"] = "on the left", ["right"] = "on the right", ["top"] = "at the top", ["bottom"] = "at the bottom", ["center"] = "in the center",
    };
    static readonly string[] Order = ["top", "left", "center", "right", "bottom"];
    static readonly string[] Numbers = ["no", "one", "two", "three", "four", "five"];

    public static List<TShape> FromScene(ShapesScene scene) =>
        scene.Shapes.Select(s => new TShape(s.Kind.ToString().ToLowerInvariant(), s.Color.ToString().ToLowerInvariant(),
            s.Size.ToString().ToLowerInvariant(), s.Position.ToString().ToLowerInvariant())).ToList();

    public static string Caption(List<TShape> shapes)
    {
        var parts = shapes.OrderBy(s => Array.IndexOf(Order, s.Position))
            .Select(s => $"a {s.Size} {s.Color} {s.Kind} {PhraseOf[s.Position]}").ToList();
        string body = parts.Count == 1 ? parts[0] : string.Join(", ", parts.Take(parts.Count - 1)) + " and " + parts[^1];
        return char.ToUpperInvariant(body[0]) + body[1..] + ".";
    }

    /// <summary>The one shape a referring expression ("the triangle", "the red triangle", "the triangle on the left") names.</summary>
    public static TShape Resolve(List<TShape> shapes, string reference)
    {
        var m = RefRegex().Match(reference);
        if (!m.Success) throw new Exception($"unparsed reference '{reference}'");
        var matches = shapes.Where(s => s.Kind == m.Groups["kind"].Value
            && (!m.Groups["color"].Success || s.Color == m.Groups["color"].Value)
            && (!m.Groups["pos"].Success || PhraseOf[s.Position] == m.Groups["pos"].Value)).ToList();
        if (matches.Count != 1) throw new Exception($"'{reference}' names {matches.Count} shapes");
        return matches[0];
    }

    static string Cap(string s) => char.ToUpperInvariant(s[0]) + s[1..];

    static string Count(int n, string singular, string plural) => n == 1 ? $"There is one {singular}." : $"There are {Numbers[n]} {plural}.";

    /// <summary>The correct answer to <paramref name="question"/> about <paramref name="shapes"/>, by type.</summary>
    public static string Answer(List<TShape> shapes, QuestionType type, string question)
    {
        Match m;
        switch (type)
        {
            case QuestionType.Color:
                m = Regex.Match(question, @"^(?:What color is|What is the color of|Which color is) (?<ref>.+)\?$");
                Assert.True(m.Success, question);
                Assert.DoesNotContain(Colors, c => m.Groups["ref"].Value.Split(' ').Contains(c)); // never gives the colour away
                var sc = Resolve(shapes, m.Groups["ref"].Value);
                return $"{Cap(m.Groups["ref"].Value)} is {sc.Color}.";
            case QuestionType.Shape:
                m = Regex.Match(question, @"^(?:What shape is|Which shape is|What kind of shape is) (?<pos>.+)\?$");
                Assert.True(m.Success, question);
                var at = shapes.Single(s => PhraseOf[s.Position] == m.Groups["pos"].Value);
                return $"There is a {at.Kind} {m.Groups["pos"].Value}.";
            case QuestionType.Count:
                m = Regex.Match(question, @"^How many (?<what>.+?) (?:are there|are in the image|can you see)\?$");
                Assert.True(m.Success, question);
                string what = m.Groups["what"].Value;
                if (what == "shapes") return Count(shapes.Count, "shape", "shapes");
                var cm = Regex.Match(what, @"^(?<c>\w+) shapes$");
                if (cm.Success)
                {
                    Assert.Contains(cm.Groups["c"].Value, Colors);
                    return Count(shapes.Count(s => s.Color == cm.Groups["c"].Value), cm.Groups["c"].Value + " shape", what);
                }
                string kind = what.TrimEnd('s');
                Assert.Contains(kind, Kinds);
                return Count(shapes.Count(s => s.Kind == kind), kind, what);
            case QuestionType.Position:
                m = Regex.Match(question, @"^(?:Where is|Where in the image is) (?<ref>.+?)(?: located)?\?$");
                Assert.True(m.Success, question);
                return $"{Cap(m.Groups["ref"].Value)} is {PhraseOf[Resolve(shapes, m.Groups["ref"].Value).Position]}.";
            case QuestionType.Size:
                m = Regex.Match(question, @"^(?:Is (?<ref>.+) (?:large or small|small or large)|What size is (?<ref>.+)|How big is (?<ref>.+))\?$");
                Assert.True(m.Success, question);
                return $"{Cap(m.Groups["ref"].Value)} is {Resolve(shapes, m.Groups["ref"].Value).Size}.";
            case QuestionType.Existence:
                m = Regex.Match(question, @"^(?:Is there|Can you see|Does the image contain) (?<art>an?) (?<noun>.+?)(?: in the image)?\?$");
                Assert.True(m.Success, question);
                string noun = m.Groups["noun"].Value;
                Assert.Equal(noun.StartsWith('o') ? "an" : "a", m.Groups["art"].Value);
                var words = noun.Split(' ');
                bool exists = words.Length switch
                {
                    1 => shapes.Any(s => s.Kind == words[0]),
                    2 when words[1] == "shape" => shapes.Any(s => s.Color == words[0]),
                    2 => shapes.Any(s => s.Color == words[0] && s.Kind == words[1]),
                    _ => throw new Exception(question),
                };
                return exists ? $"Yes, there is {m.Groups["art"].Value} {noun}." : $"No, there is no {noun}.";
            case QuestionType.Describe:
                Assert.Contains(question, new[] { "Describe the image.", "Describe the image briefly.", "What do you see in the image?", "What is in the image?" });
                return Caption(shapes);
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    [GeneratedRegex(@"^the (?:(?<color>red|green|blue|yellow|purple|orange) )?(?<kind>circle|square|triangle|star)(?: (?<pos>on the left|on the right|at the top|at the bottom|in the center))?$")]
    private static partial Regex RefRegex();
}
