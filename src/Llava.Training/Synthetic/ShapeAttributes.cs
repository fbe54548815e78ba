namespace Llava.Training.Synthetic;

/// <summary>The four shape kinds of the shapes world.</summary>
public enum ShapeKind { Circle, Square, Triangle, Star }

/// <summary>The six fill colours of the shapes world.</summary>
public enum ShapeColor { Red, Green, Blue, Yellow, Purple, Orange }

/// <summary>Absolute size class: a large shape is roughly twice the extent (four times the area) of a small one.</summary>
public enum ShapeSize { Small, Large }

/// <summary>
/// Where a shape sits. The canvas is split into a 3x3 grid of equal cells and five of them are used, a plus sign:
/// <c>Top</c> = top-middle cell, <c>Left</c> = middle-left, <c>Center</c> = middle, <c>Right</c> = middle-right,
/// <c>Bottom</c> = bottom-middle. Corners stay empty, so "left" never looks like "top" and vice versa.
/// </summary>
public enum ShapePosition { Left, Right, Top, Bottom, Center }

/// <summary>The question types of the instruction data and the eval file.</summary>
public enum QuestionType { Color, Shape, Count, Position, Existence, Size, Describe }

/// <summary>An 8-bit RGB colour.</summary>
public readonly record struct Rgb(byte R, byte G, byte B)
{
    public override string ToString() => $"#{R:X2}{G:X2}{B:X2}";
}

/// <summary>Words for the attributes, palette, and the grid geometry.</summary>
public static class ShapeWords
{
    public static readonly ShapeKind[] Kinds = Enum.GetValues<ShapeKind>();
    public static readonly ShapeColor[] Colors = Enum.GetValues<ShapeColor>();
    public static readonly ShapeSize[] Sizes = Enum.GetValues<ShapeSize>();
    public static readonly ShapePosition[] Positions = Enum.GetValues<ShapePosition>();
    public static readonly QuestionType[] QuestionTypes = Enum.GetValues<QuestionType>();

    /// <summary>Order in which captions list the shapes: top, left, center, right, bottom (reading order).</summary>
    public static readonly ShapePosition[] ReadingOrder =
        [ShapePosition.Top, ShapePosition.Left, ShapePosition.Center, ShapePosition.Right, ShapePosition.Bottom];

    public static string Name(ShapeKind k) => k switch
    {
        ShapeKind.Circle => "circle",
        ShapeKind.Square => "square",
        ShapeKind.Triangle => "triangle",
        ShapeKind.Star => "star",
        _ => throw new ArgumentOutOfRangeException(nameof(k)),
    };

    public static string Plural(ShapeKind k) => Name(k) + "s";

    public static string Name(ShapeColor c) => c switch
    {
        ShapeColor.Red => "red",
        ShapeColor.Green => "green",
        ShapeColor.Blue => "blue",
        ShapeColor.Yellow => "yellow",
        ShapeColor.Purple => "purple",
        ShapeColor.Orange => "orange",
        _ => throw new ArgumentOutOfRangeException(nameof(c)),
    };

    public static string Name(ShapeSize s) => s == ShapeSize.Large ? "large" : "small";

    /// <summary>One word: left, right, top, bottom, center.</summary>
    public static string Name(ShapePosition p) => p switch
    {
        ShapePosition.Left => "left",
        ShapePosition.Right => "right",
        ShapePosition.Top => "top",
        ShapePosition.Bottom => "bottom",
        ShapePosition.Center => "center",
        _ => throw new ArgumentOutOfRangeException(nameof(p)),
    };

    /// <summary>The phrase used in sentences: "on the left", "at the top", "in the center".</summary>
    public static string Phrase(ShapePosition p) => p switch
    {
        ShapePosition.Left => "on the left",
        ShapePosition.Right => "on the right",
        ShapePosition.Top => "at the top",
        ShapePosition.Bottom => "at the bottom",
        ShapePosition.Center => "in the center",
        _ => throw new ArgumentOutOfRangeException(nameof(p)),
    };

    /// <summary>Lower-case name used in JSON files: color, shape, count, position, existence, size, describe.</summary>
    public static string Name(QuestionType t) => t.ToString().ToLowerInvariant();

    public static QuestionType ParseQuestionType(string name) =>
        Enum.TryParse<QuestionType>(name, ignoreCase: true, out var t) && Enum.IsDefined(t)
            ? t
            : throw new FormatException($"unknown question type '{name}' (expected one of: {string.Join(", ", QuestionTypes.Select(Name))})");

    /// <summary>Number words 0..5; 0 is "no" ("There are no red shapes.").</summary>
    public static string Number(int n) => n switch
    {
        0 => "no",
        1 => "one",
        2 => "two",
        3 => "three",
        4 => "four",
        5 => "five",
        _ => throw new ArgumentOutOfRangeException(nameof(n)),
    };

    /// <summary>"a" or "an" for a word.</summary>
    public static string Article(string nextWord) => "aeiou".Contains(char.ToLowerInvariant(nextWord[0])) ? "an" : "a";

    /// <summary>Nominal fill colour before per-shape jitter.</summary>
    public static Rgb Palette(ShapeColor c) => c switch
    {
        ShapeColor.Red => new(215, 40, 40),
        ShapeColor.Green => new(40, 165, 60),
        ShapeColor.Blue => new(40, 85, 215),
        ShapeColor.Yellow => new(235, 200, 30),
        ShapeColor.Purple => new(140, 55, 185),
        ShapeColor.Orange => new(245, 130, 25),
        _ => throw new ArgumentOutOfRangeException(nameof(c)),
    };

    /// <summary>(column, row) of a position in the 3x3 grid.</summary>
    public static (int Col, int Row) Cell(ShapePosition p) => p switch
    {
        ShapePosition.Left => (0, 1),
        ShapePosition.Right => (2, 1),
        ShapePosition.Top => (1, 0),
        ShapePosition.Bottom => (1, 2),
        ShapePosition.Center => (1, 1),
        _ => throw new ArgumentOutOfRangeException(nameof(p)),
    };

    /// <summary>The region (x0, y0, x1, y1) of a position on a <paramref name="canvas"/>-pixel square canvas.</summary>
    public static (float X0, float Y0, float X1, float Y1) Region(ShapePosition p, int canvas)
    {
        var (c, r) = Cell(p);
        float cell = canvas / 3f;
        return (c * cell, r * cell, (c + 1) * cell, (r + 1) * cell);
    }
}
