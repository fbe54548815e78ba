using Llava.Training.Synthetic;

namespace Llava.Tests.Synthetic;

public sealed class ShapesLanguageTests
{
    [Fact]
    public void Caption_ReadsTheSceneInOrder()
    {
        var scene = new ShapesScene(0, 224, new Rgb(240, 240, 240), [
            new SceneShape(ShapeKind.Star, ShapeColor.Blue, ShapeSize.Small, ShapePosition.Top, 112, 37, 10, new Rgb(40, 85, 215)),
            new SceneShape(ShapeKind.Circle, ShapeColor.Red, ShapeSize.Large, ShapePosition.Left, 37, 112, 28, new Rgb(215, 40, 40)),
        ]);
        Assert.Equal("A small blue star at the top and a large red circle on the left.", ShapesLanguage.Caption(scene));
    }

    [Fact]
    public void EveryAnswer_IsCorrect_PerIndependentChecker()
    {
        var seenTemplates = new HashSet<string>();
        for (int seed = 0; seed < 1500; seed++)
        {
            var scene = ShapesWorld.Layout(seed);
            var shapes = SceneChecker.FromScene(scene);
            Assert.Equal(SceneChecker.Caption(shapes), ShapesLanguage.Caption(scene));
            var rng = new ShapesRng((ulong)seed);
            foreach (var type in Enum.GetValues<QuestionType>())
                for (int k = 0; k < 4; k++)
                {
                    var qa = ShapesLanguage.Ask(scene, type, rng);
                    Assert.Equal(type, qa.Type);
                    Assert.Equal(SceneChecker.Answer(shapes, type, qa.Question), qa.Answer);
                    seenTemplates.Add(type + ":" + qa.Question.Split(' ')[0] + qa.Question.Split(' ')[1]);
                }
            foreach (var qa in ShapesLanguage.Conversation(scene, rng))
                Assert.Equal(SceneChecker.Answer(shapes, qa.Type, qa.Question), qa.Answer);
        }
        Assert.True(seenTemplates.Count >= 14, string.Join(", ", seenTemplates));
    }

    [Fact]
    public void AnswersCoverTheHardCases()
    {
        var answers = new List<string>();
        for (int seed = 0; seed < 2000; seed++)
        {
            var scene = ShapesWorld.Layout(seed);
            var rng = new ShapesRng((ulong)seed + 99);
            answers.Add(ShapesLanguage.Ask(scene, QuestionType.Count, rng).Answer);
            answers.Add(ShapesLanguage.Ask(scene, QuestionType.Color, rng).Answer);
            answers.Add(ShapesLanguage.Ask(scene, QuestionType.Position, rng).Answer);
        }
        Assert.Contains(answers, a => a.StartsWith("There are no "));
        Assert.Contains(answers, a => a == "There is one shape.");
        Assert.Contains(answers, a => a == "There are four shapes.");
        Assert.Contains(answers, a => a.Contains(" red shapes.") && a.StartsWith("There are two"));
        Assert.Contains(answers, a => System.Text.RegularExpressions.Regex.IsMatch(a, @"^The \w+ (on|at|in) the \w+ is \w+\.$")); // "The triangle on the left is red."
        Assert.Contains(answers, a => System.Text.RegularExpressions.Regex.IsMatch(a, @"^The (red|green|blue|yellow|purple|orange) \w+ is (on|at|in) the \w+\.$"));
    }

    [Fact]
    public void YesNo_IsBalanced()
    {
        int yes = 0, no = 0;
        for (int seed = 0; seed < 4000; seed++)
        {
            var scene = ShapesWorld.Layout(seed);
            foreach (var qa in ShapesLanguage.Conversation(scene, new ShapesRng((ulong)seed * 7 + 1)))
                if (qa.Type == QuestionType.Existence)
                {
                    if (qa.Answer.StartsWith("Yes, ")) yes++;
                    else { Assert.StartsWith("No, ", qa.Answer); no++; }
                }
        }
        double frac = (double)yes / (yes + no);
        Assert.True(yes + no > 1000);
        Assert.InRange(frac, 0.45, 0.55);
    }

    [Fact]
    public void Conversations_Have2To4RoundsOfDistinctTypes()
    {
        var lengths = new HashSet<int>();
        for (int seed = 0; seed < 500; seed++)
        {
            var conv = ShapesLanguage.Conversation(ShapesWorld.Layout(seed), new ShapesRng((ulong)seed));
            Assert.InRange(conv.Count, 2, 4);
            Assert.Equal(conv.Count, conv.Select(c => c.Type).Distinct().Count());
            lengths.Add(conv.Count);
        }
        Assert.Equal(3, lengths.Count);
    }

    [Fact]
    public void Vocabulary_CoversEveryGeneratedWord()
    {
        var words = ShapesVocabulary.Words.ToHashSet();
        Assert.Contains("triangle", words);
        Assert.Contains("The", words);
        Assert.Contains("the", words);
        Assert.DoesNotContain("{ref}", words);
        Assert.True(words.Count < 120, $"{words.Count} words");
        for (int seed = 0; seed < 2000; seed++)
        {
            var scene = ShapesWorld.Layout(seed);
            var rng = new ShapesRng((ulong)seed);
            var texts = new List<string> { ShapesLanguage.Caption(scene), ShapesLanguage.PretrainPrompt(rng) };
            foreach (var t in Enum.GetValues<QuestionType>())
            {
                var qa = ShapesLanguage.Ask(scene, t, rng);
                texts.Add(qa.Question);
                texts.Add(qa.Answer);
            }
            foreach (var text in texts)
                foreach (var token in ShapesVocabulary.Tokenize(text))
                    Assert.True(words.Contains(token) || ShapesVocabulary.Punctuation.Contains(token) || token == ShapesVocabulary.ImageToken,
                        $"'{token}' from '{text}' is not in the word list");
        }
    }
    [Fact]
    public void IndependentConversations_NeverRepeatAKindColourOrPosition_DescriptionLast()
    {
        string[] vocabulary = ["circle", "square", "triangle", "star", "red", "green", "blue", "yellow", "purple", "orange",
            "left", "right", "top", "bottom", "center"];
        int rounds = 0, conversations = 0, describes = 0;
        for (int seed = 0; seed < 800; seed++)
        {
            var scene = ShapesWorld.Layout(seed);
            var shapes = SceneChecker.FromScene(scene);
            var conv = ShapesLanguage.Conversation(scene, new ShapesRng((ulong)seed), 4, 7, independent: true);
            Assert.NotEmpty(conv);
            var named = new HashSet<string>();
            for (int i = 0; i < conv.Count; i++)
            {
                var qa = conv[i];
                Assert.Equal(SceneChecker.Answer(shapes, qa.Type, qa.Question), qa.Answer);
                if (qa.Type == QuestionType.Describe) { Assert.Equal(conv.Count - 1, i); describes++; continue; }
                var words = (qa.Question + " " + qa.Answer).ToLowerInvariant().Split(' ', ',', '.', '?')
                    .Select(w => w.TrimEnd('s')).Where(w => vocabulary.Contains(w)).ToHashSet();
                Assert.False(words.Overlaps(named), $"seed {seed}: round {i} '{qa.Question}' names something an earlier round named");
                named.UnionWith(words);
            }
            Assert.Equal(conv.Count, conv.Select(q => q.Type).Distinct().Count());
            rounds += conv.Count;
            conversations++;
        }
        // Rounds are dropped, not replaced by repeats: fewer than the free 4-7, but still several per image.
        double mean = (double)rounds / conversations;
        Assert.InRange(mean, 3.0, 5.5);
        Assert.InRange(describes, conversations / 2, conversations);
    }
}
