namespace Llava.Training.Synthetic;

/// <summary>
/// Every word the shapes world's text uses (questions, answers, captions, instructions), case as written
/// ("The" and "the" are both listed), sorted ordinally. Text is split into words by <see cref="Tokenize"/>: letters
/// and digits form words; <see cref="Punctuation"/> characters are separate tokens; "&lt;image&gt;" is the image
/// placeholder and is not a word.
/// </summary>
public static class ShapesVocabulary
{
    public const string ImageToken = "<image>";
    public static readonly string[] Punctuation = [".", ",", "?"];

    public static IReadOnlyList<string> Words { get; } = Build();

    /// <summary>Splits text into words and punctuation tokens ("&lt;image&gt;" is one token).</summary>
    public static IEnumerable<string> Tokenize(string text)
    {
        int i = 0;
        while (i < text.Length)
        {
            char c = text[i];
            if (char.IsWhiteSpace(c)) { i++; continue; }
            if (string.CompareOrdinal(text, i, ImageToken, 0, ImageToken.Length) == 0)
            {
                yield return ImageToken;
                i += ImageToken.Length;
                continue;
            }
            if (char.IsLetterOrDigit(c))
            {
                int start = i;
                while (i < text.Length && char.IsLetterOrDigit(text[i])) i++;
                yield return text[start..i];
                continue;
            }
            yield return c.ToString();
            i++;
        }
    }

    static IReadOnlyList<string> Build()
    {
        var sources = new List<string>();
        sources.AddRange(ShapesLanguage.ColorTemplates);
        sources.AddRange(ShapesLanguage.ShapeTemplates);
        sources.AddRange(ShapesLanguage.CountAllTemplates);
        sources.AddRange(ShapesLanguage.CountColorTemplates);
        sources.AddRange(ShapesLanguage.CountKindTemplates);
        sources.AddRange(ShapesLanguage.PositionTemplates);
        sources.AddRange(ShapesLanguage.ExistenceTemplates);
        sources.AddRange(ShapesLanguage.SizeTemplates);
        sources.AddRange(ShapesLanguage.DescribeTemplates);
        sources.AddRange(ShapesLanguage.PretrainInstructions);
        // Fixed words of answers, captions and referring expressions.
        sources.Add("The the A a an and There there is are one no Yes yes No shape shapes");
        sources.AddRange(ShapeWords.Kinds.Select(ShapeWords.Name));
        sources.AddRange(ShapeWords.Kinds.Select(ShapeWords.Plural));
        sources.AddRange(ShapeWords.Colors.Select(ShapeWords.Name));
        sources.AddRange(ShapeWords.Sizes.Select(ShapeWords.Name));
        sources.AddRange(ShapeWords.Positions.Select(ShapeWords.Phrase));
        sources.AddRange(Enumerable.Range(0, 6).Select(ShapeWords.Number));
        var words = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var s in sources)
        {
            string clean = System.Text.RegularExpressions.Regex.Replace(s, @"\{[a-z]+\}", " ");
            foreach (var t in Tokenize(clean))
                if (char.IsLetterOrDigit(t[0])) words.Add(t);
        }
        return words.ToList();
    }
}
