using Llava.Training.Synthetic;

namespace Llava.Tests.Synthetic;

public sealed class ShapesScorerTests
{
    [Theory]
    // exact (after normalising case/punctuation/whitespace)
    [InlineData(QuestionType.Color, "The triangle is red.", "The triangle is red.", true, true)]
    [InlineData(QuestionType.Color, "The triangle is red.", "  the TRIANGLE is red ", true, true)]
    // lenient: key word present, no contradiction
    [InlineData(QuestionType.Color, "The triangle is red.", "Red.", false, true)]
    [InlineData(QuestionType.Color, "The triangle is red.", "It is a red triangle", false, true)]
    [InlineData(QuestionType.Color, "The triangle is red.", "The triangle is blue.", false, false)]
    [InlineData(QuestionType.Color, "The triangle is red.", "It is red or blue.", false, false)]
    [InlineData(QuestionType.Color, "The triangle is red.", "", false, false)]
    [InlineData(QuestionType.Shape, "There is a circle on the left.", "A circle.", false, true)]
    [InlineData(QuestionType.Shape, "There is a circle on the left.", "circles", false, true)]
    [InlineData(QuestionType.Shape, "There is a circle on the left.", "There is a square on the left.", false, false)]
    [InlineData(QuestionType.Count, "There are three shapes.", "3", false, true)]
    [InlineData(QuestionType.Count, "There are three shapes.", "three", false, true)]
    [InlineData(QuestionType.Count, "There are three shapes.", "There are two shapes.", false, false)]
    [InlineData(QuestionType.Count, "There are no red shapes.", "None.", false, true)]
    [InlineData(QuestionType.Count, "There are no red shapes.", "0", false, true)]
    [InlineData(QuestionType.Count, "There are no red shapes.", "There is one red shape.", false, false)]
    [InlineData(QuestionType.Count, "There is one circle.", "1 circle", false, true)]
    [InlineData(QuestionType.Position, "The star is at the top.", "top", false, true)]
    [InlineData(QuestionType.Position, "The star is in the center.", "In the middle.", false, true)]
    [InlineData(QuestionType.Position, "The star is at the top.", "At the top left.", false, false)]
    [InlineData(QuestionType.Position, "The star is at the top.", "The star is on the left.", false, false)]
    [InlineData(QuestionType.Existence, "Yes, there is a green square.", "Yes.", false, true)]
    [InlineData(QuestionType.Existence, "Yes, there is a green square.", "yes there is a green square", true, true)]
    [InlineData(QuestionType.Existence, "No, there is no green square.", "No.", false, true)]
    [InlineData(QuestionType.Existence, "No, there is no green square.", "There is no green square.", false, true)]
    [InlineData(QuestionType.Existence, "No, there is no green square.", "Yes, there is a green square.", false, false)]
    [InlineData(QuestionType.Existence, "Yes, there is a green square.", "Yes, there is no green square.", false, false)]
    [InlineData(QuestionType.Size, "The circle is large.", "Big.", false, true)]
    [InlineData(QuestionType.Size, "The circle is large.", "The circle is small.", false, false)]
    [InlineData(QuestionType.Size, "The circle is large.", "large or small", false, false)]
    [InlineData(QuestionType.Describe, "A large red circle on the left and a small blue star at the top.",
        "A small blue star at the top and a large red circle on the left.", false, true)]
    [InlineData(QuestionType.Describe, "A large red circle on the left and a small blue star at the top.",
        "A large red circle on the left.", false, false)]
    [InlineData(QuestionType.Describe, "A large red circle on the left.", "A large green circle on the left.", false, false)]
    public void Score(QuestionType type, string expected, string predicted, bool exact, bool lenient)
    {
        var s = ShapesScorer.Score(type, expected, predicted);
        Assert.Equal(exact, s.Exact);
        Assert.Equal(lenient, s.Lenient);
    }

    [Fact]
    public void Normalize()
    {
        Assert.Equal("yes there is a green square", ShapesScorer.Normalize("  Yes, there is a GREEN square!! "));
        Assert.Equal("", ShapesScorer.Normalize("?!."));
    }

    [Fact]
    public void EveryCanonicalAnswer_HasKeyWords_AndScoresItself()
    {
        for (int seed = 0; seed < 500; seed++)
        {
            var scene = ShapesWorld.Layout(seed);
            var rng = new ShapesRng((ulong)seed);
            foreach (var t in Enum.GetValues<QuestionType>())
            {
                var qa = ShapesLanguage.Ask(scene, t, rng);
                Assert.NotEmpty(ShapesScorer.KeyWords(t, qa.Answer));
                Assert.Equal(new ShapesScore(true, true), ShapesScorer.Score(t, qa.Answer, qa.Answer));
            }
        }
    }

    [Fact]
    public void Report_AggregatesPerType()
    {
        var r = new ShapesEvalReport();
        r.Add(QuestionType.Color, new ShapesScore(true, true));
        r.Add(QuestionType.Color, new ShapesScore(false, true));
        r.Add(QuestionType.Count, new ShapesScore(false, false));
        Assert.Equal(3, r.Count);
        var color = r.ByType.Single(t => t.Type == QuestionType.Color);
        Assert.Equal(0.5, color.Exact);
        Assert.Equal(1.0, color.Lenient);
        Assert.Equal(1.0 / 3, r.ExactAccuracy, 6);
        Assert.Contains("color", r.ToString());
        Assert.Contains("all", r.ToString());
    }
}
