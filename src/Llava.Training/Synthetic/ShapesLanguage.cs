namespace Llava.Training.Synthetic;

/// <summary>One question and its canonical answer.</summary>
public sealed record QaPair(QuestionType Type, string Question, string Answer);

/// <summary>
/// Captions, questions and canonical answers about a <see cref="ShapesScene"/>. Questions come from a few templates
/// per type; answers always have one canonical form per type so they can be scored by exact match:
/// <list type="table">
/// <item><term>color</term><description>"What color is the triangle?" → "The triangle is red."</description></item>
/// <item><term>shape</term><description>"What shape is on the left?" → "There is a circle on the left."</description></item>
/// <item><term>count</term><description>"How many shapes are there?" → "There are three shapes." / "There is one red shape." / "There are no circles."</description></item>
/// <item><term>position</term><description>"Where is the star?" → "The star is at the top."</description></item>
/// <item><term>existence</term><description>"Is there a green square?" → "Yes, there is a green square." / "No, there is no green square."</description></item>
/// <item><term>size</term><description>"Is the circle large or small?" → "The circle is large."</description></item>
/// <item><term>describe</term><description>"Describe the image." → the caption.</description></item>
/// </list>
/// A shape is referred to as "the triangle" when it is the only triangle, otherwise as "the red triangle" (kind and
/// colour are unique together), or, in colour questions, "the triangle on the left".
/// </summary>
public static class ShapesLanguage
{
    // Templates. {ref} is a referring expression ("the red triangle"), {pos} a position phrase ("on the left"),
    // {obj} an indefinite object ("a green square"), {color} a colour, {kinds} a plural kind.
    public static readonly string[] ColorTemplates = ["What color is {ref}?", "What is the color of {ref}?", "Which color is {ref}?"];
    public static readonly string[] ShapeTemplates = ["What shape is {pos}?", "Which shape is {pos}?", "What kind of shape is {pos}?"];
    public static readonly string[] CountAllTemplates = ["How many shapes are there?", "How many shapes are in the image?", "How many shapes can you see?"];
    public static readonly string[] CountColorTemplates = ["How many {color} shapes are there?", "How many {color} shapes are in the image?", "How many {color} shapes can you see?"];
    public static readonly string[] CountKindTemplates = ["How many {kinds} are there?", "How many {kinds} are in the image?", "How many {kinds} can you see?"];
    public static readonly string[] PositionTemplates = ["Where is {ref}?", "Where is {ref} located?", "Where in the image is {ref}?"];
    public static readonly string[] ExistenceTemplates = ["Is there {obj}?", "Is there {obj} in the image?", "Can you see {obj}?", "Does the image contain {obj}?"];
    public static readonly string[] SizeTemplates = ["Is {ref} large or small?", "Is {ref} small or large?", "What size is {ref}?", "How big is {ref}?"];
    public static readonly string[] DescribeTemplates = ["Describe the image.", "Describe the image briefly.", "What do you see in the image?", "What is in the image?"];

    /// <summary>Stage-1 instructions after "&lt;image&gt;\n"; the empty string means a bare "&lt;image&gt;\n" turn.</summary>
    public static readonly string[] PretrainInstructions =
        ["", "Describe the image briefly.", "Give a short description of the image.", "Write a caption for the image.", "What is in the picture?"];

    /// <summary>"A large red circle on the left and a small blue star at the top."</summary>
    public static string Caption(ShapesScene scene)
    {
        var parts = scene.Shapes.Select(s =>
        {
            string size = ShapeWords.Name(s.Size);
            return $"{ShapeWords.Article(size)} {s.Description} {ShapeWords.Phrase(s.Position)}";
        }).ToList();
        string body = parts.Count == 1
            ? parts[0]
            : string.Join(", ", parts.Take(parts.Count - 1)) + " and " + parts[^1];
        return Capitalize(body) + ".";
    }

    /// <summary>A stage-1 human turn: "&lt;image&gt;\n" plus (maybe) a short instruction.</summary>
    public static string PretrainPrompt(ShapesRng rng) => "<image>\n" + rng.Pick(PretrainInstructions);

    /// <summary>
    /// A multi-turn conversation of <paramref name="minRounds"/>..<paramref name="maxRounds"/> questions of distinct types.
    /// Existence questions are yes with probability 1/2.
    /// </summary>
    /// <param name="independent">Every round must be answerable only from the image: a round whose question or answer
    /// names a kind, colour or position that an earlier round named is dropped (so "Where is the circle?" never follows
    /// "There is a circle on the left."), and the description, which names everything, comes last. Held-out questions
    /// are asked one per conversation; without this, many training answers can be copied from earlier turns instead of
    /// read from the image. Extra rounds are not added in this mode (they would repeat what was named).</param>
    public static IReadOnlyList<QaPair> Conversation(ShapesScene scene, ShapesRng rng, int minRounds = 2, int maxRounds = 4, int extraRounds = 0, bool independent = false)
    {
        int rounds = rng.Next(minRounds, Math.Min(maxRounds, ShapeWords.QuestionTypes.Length));
        var types = ShapeWords.QuestionTypes.ToList();
        rng.Shuffle(types);
        if (independent)
        {
            // Walk all types in the shuffled order, a few draws each, until enough rounds name nothing named before.
            bool describe = types.Take(rounds).Contains(QuestionType.Describe);
            var named = new HashSet<string>(StringComparer.Ordinal);
            var kept = new List<QaPair>();
            foreach (var t in types)
            {
                if (t == QuestionType.Describe) continue;
                if (kept.Count + (describe ? 1 : 0) >= rounds) break;
                for (int attempt = 0; attempt < 3; attempt++)
                {
                    var qa = Ask(scene, t, rng);
                    var facts = ContentWords(qa);
                    if (facts.Overlaps(named)) continue;
                    named.UnionWith(facts);
                    kept.Add(qa);
                    break;
                }
            }
            if (describe) kept.Add(Ask(scene, QuestionType.Describe, rng));
            return kept;
        }
        var list = types.Take(rounds).Select(t => Ask(scene, t, rng)).ToList();
        // Extra rounds repeat the types that need a shape found by what it is (not where it is) or its absence noticed;
        // an extra existence question takes the opposite answer of the previous one, so one image shows both.
        for (int i = 0, tries = 0; i < extraRounds && tries < 8 * extraRounds; tries++)
        {
            var t = rng.Pick(ExtraRoundTypes);
            bool? yes = null;
            if (t == QuestionType.Existence && list.LastOrDefault(q => q.Type == QuestionType.Existence) is { } prev)
                yes = !prev.Answer.StartsWith("Yes", StringComparison.Ordinal);
            var qa = Ask(scene, t, rng, yes);
            if (list.Any(q => q.Question == qa.Question)) continue;
            list.Add(qa);
            i++;
        }
        return list;
    }

    static readonly HashSet<string> ContentVocabulary = new(
        ShapeWords.Kinds.Select(ShapeWords.Name).Concat(ShapeWords.Kinds.Select(ShapeWords.Plural))
            .Concat(ShapeWords.Colors.Select(ShapeWords.Name)).Concat(ShapeWords.Positions.Select(ShapeWords.Name)), StringComparer.Ordinal);

    /// <summary>The kinds (singular), colours and positions a question and its answer name.</summary>
    static HashSet<string> ContentWords(QaPair qa)
    {
        var words = new HashSet<string>(StringComparer.Ordinal);
        foreach (var w in (qa.Question + " " + qa.Answer).ToLowerInvariant().Split([' ', ',', '.', '?'], StringSplitOptions.RemoveEmptyEntries))
            if (ContentVocabulary.Contains(w)) words.Add(w.EndsWith('s') && ContentVocabulary.Contains(w[..^1]) ? w[..^1] : w);
        return words;
    }

    /// <summary>Types the extra rounds of <see cref="Conversation"/> draw from (existence twice as often).</summary>
    static readonly QuestionType[] ExtraRoundTypes =
        [QuestionType.Existence, QuestionType.Existence, QuestionType.Color, QuestionType.Count, QuestionType.Position, QuestionType.Size];

    /// <summary>One question of type <paramref name="type"/>. <paramref name="existenceAnswer"/> forces yes/no.</summary>
    public static QaPair Ask(ShapesScene scene, QuestionType type, ShapesRng rng, bool? existenceAnswer = null) => type switch
    {
        QuestionType.Color => AskColor(scene, rng),
        QuestionType.Shape => AskShape(scene, rng),
        QuestionType.Count => AskCount(scene, rng),
        QuestionType.Position => AskPosition(scene, rng),
        QuestionType.Existence => AskExistence(scene, rng, existenceAnswer ?? rng.Chance(0.5)),
        QuestionType.Size => AskSize(scene, rng),
        QuestionType.Describe => new QaPair(type, rng.Pick(DescribeTemplates), Caption(scene)),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>
    /// "the triangle" if the kind is unique in the scene; otherwise "the red triangle", or, when the colour must
    /// not be given away (<paramref name="allowColor"/> false), "the triangle on the left".
    /// </summary>
    public static string Reference(ShapesScene scene, SceneShape shape, bool allowColor)
    {
        string kind = ShapeWords.Name(shape.Kind);
        if (scene.CountKind(shape.Kind) == 1) return "the " + kind;
        return allowColor ? $"the {ShapeWords.Name(shape.Color)} {kind}" : $"the {kind} {ShapeWords.Phrase(shape.Position)}";
    }

    static QaPair AskColor(ShapesScene scene, ShapesRng rng)
    {
        var s = rng.Pick(scene.Shapes);
        string r = Reference(scene, s, allowColor: false);
        return new(QuestionType.Color, Fill(rng.Pick(ColorTemplates), "{ref}", r), $"{Capitalize(r)} is {ShapeWords.Name(s.Color)}.");
    }

    static QaPair AskShape(ShapesScene scene, ShapesRng rng)
    {
        var s = rng.Pick(scene.Shapes);
        string pos = ShapeWords.Phrase(s.Position);
        return new(QuestionType.Shape, Fill(rng.Pick(ShapeTemplates), "{pos}", pos), $"There is a {ShapeWords.Name(s.Kind)} {pos}.");
    }

    static QaPair AskCount(ShapesScene scene, ShapesRng rng)
    {
        double u = rng.NextDouble();
        if (u < 0.4)
            return new(QuestionType.Count, rng.Pick(CountAllTemplates), CountAnswer(scene.Shapes.Count, "shape", "shapes"));
        if (u < 0.7)
        {
            // Mostly colours that are present, sometimes absent ones (answer "There are no ... shapes.").
            var present = scene.Shapes.Select(s => s.Color).Distinct().ToList();
            var absent = ShapeWords.Colors.Except(present).ToList();
            var c = absent.Count > 0 && rng.Chance(0.3) ? rng.Pick(absent) : rng.Pick(present);
            string name = ShapeWords.Name(c);
            return new(QuestionType.Count, Fill(rng.Pick(CountColorTemplates), "{color}", name),
                CountAnswer(scene.CountColor(c), name + " shape", name + " shapes"));
        }
        else
        {
            var present = scene.Shapes.Select(s => s.Kind).Distinct().ToList();
            var absent = ShapeWords.Kinds.Except(present).ToList();
            var k = absent.Count > 0 && rng.Chance(0.3) ? rng.Pick(absent) : rng.Pick(present);
            return new(QuestionType.Count, Fill(rng.Pick(CountKindTemplates), "{kinds}", ShapeWords.Plural(k)),
                CountAnswer(scene.CountKind(k), ShapeWords.Name(k), ShapeWords.Plural(k)));
        }
    }

    /// <summary>"There are no red shapes." / "There is one red shape." / "There are two red shapes."</summary>
    public static string CountAnswer(int n, string singular, string plural) =>
        n == 1 ? $"There is one {singular}." : $"There are {ShapeWords.Number(n)} {plural}.";

    static QaPair AskPosition(ShapesScene scene, ShapesRng rng)
    {
        var s = rng.Pick(scene.Shapes);
        string r = Reference(scene, s, allowColor: true);
        return new(QuestionType.Position, Fill(rng.Pick(PositionTemplates), "{ref}", r), $"{Capitalize(r)} is {ShapeWords.Phrase(s.Position)}.");
    }

    static QaPair AskSize(ShapesScene scene, ShapesRng rng)
    {
        var s = rng.Pick(scene.Shapes);
        string r = Reference(scene, s, allowColor: true);
        return new(QuestionType.Size, Fill(rng.Pick(SizeTemplates), "{ref}", r), $"{Capitalize(r)} is {ShapeWords.Name(s.Size)}.");
    }

    static QaPair AskExistence(ShapesScene scene, ShapesRng rng, bool yes)
    {
        // What is asked about: colour+kind (60%), kind only (20%), colour only (20%, "a green shape").
        string noun; // e.g. "green square", "star", "green shape"
        double u = rng.NextDouble();
        var absentKinds = ShapeWords.Kinds.Where(k => scene.CountKind(k) == 0).ToList();
        if (u >= 0.6 && u < 0.8 && (yes || absentKinds.Count > 0))
        {
            var k = yes ? rng.Pick(scene.Shapes).Kind : rng.Pick(absentKinds);
            noun = ShapeWords.Name(k);
        }
        else if (u >= 0.8)
        {
            var c = yes ? rng.Pick(scene.Shapes).Color : rng.Pick(ShapeWords.Colors.Where(c => scene.CountColor(c) == 0).ToList());
            noun = ShapeWords.Name(c) + " shape";
        }
        else
        {
            ShapeKind k;
            ShapeColor c;
            if (yes)
            {
                var s = rng.Pick(scene.Shapes);
                (k, c) = (s.Kind, s.Color);
            }
            else
            {
                // Prefer hard negatives: the kind or the colour is in the scene, just not together.
                var absent = (from kk in ShapeWords.Kinds from cc in ShapeWords.Colors where !scene.Has(kk, cc) select (kk, cc)).ToList();
                var hard = absent.Where(a => scene.CountKind(a.kk) > 0 || scene.CountColor(a.cc) > 0).ToList();
                (k, c) = hard.Count > 0 && rng.Chance(0.7) ? rng.Pick(hard) : rng.Pick(absent);
            }
            noun = $"{ShapeWords.Name(c)} {ShapeWords.Name(k)}";
        }
        string obj = $"{ShapeWords.Article(noun)} {noun}";
        string question = Fill(rng.Pick(ExistenceTemplates), "{obj}", obj);
        return new(QuestionType.Existence, question, yes ? $"Yes, there is {obj}." : $"No, there is no {noun}.");
    }

    static string Fill(string template, string slot, string value) => template.Replace(slot, value, StringComparison.Ordinal);

    static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];
}
