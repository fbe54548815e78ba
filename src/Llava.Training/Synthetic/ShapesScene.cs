using Llava.Vision;

namespace Llava.Training.Synthetic;

/// <summary>
/// One shape of a scene. <see cref="CenterX"/>/<see cref="CenterY"/> are in pixels; every pixel the shape covers
/// lies within <see cref="Radius"/> of the centre on both axes (the shape's bounding square), and that square lies
/// inside the shape's position region.
/// </summary>
public sealed record SceneShape(
    ShapeKind Kind, ShapeColor Color, ShapeSize Size, ShapePosition Position,
    float CenterX, float CenterY, float Radius, Rgb Fill)
{
    /// <summary>"large red circle".</summary>
    public string Description => $"{ShapeWords.Name(Size)} {ShapeWords.Name(Color)} {ShapeWords.Name(Kind)}";
}

/// <summary>
/// A scene: background and 1-5 shapes, at most one per position, never two of the same kind and colour.
/// <see cref="Shapes"/> is in caption (reading) order: top, left, center, right, bottom.
/// </summary>
public sealed class ShapesScene
{
    public int Seed { get; }
    public int CanvasSize { get; }
    public Rgb Background { get; }
    public IReadOnlyList<SceneShape> Shapes { get; }

    public ShapesScene(int seed, int canvasSize, Rgb background, IEnumerable<SceneShape> shapes)
    {
        Seed = seed;
        CanvasSize = canvasSize;
        Background = background;
        var list = shapes.OrderBy(s => Array.IndexOf(ShapeWords.ReadingOrder, s.Position)).ToList();
        if (list.Count == 0) throw new ArgumentException("a scene needs at least one shape", nameof(shapes));
        if (list.Select(s => s.Position).Distinct().Count() != list.Count)
            throw new ArgumentException("two shapes share a position", nameof(shapes));
        if (list.Select(s => (s.Kind, s.Color)).Distinct().Count() != list.Count)
            throw new ArgumentException("two shapes share kind and colour", nameof(shapes));
        Shapes = list;
    }

    public SceneShape? At(ShapePosition p) => Shapes.FirstOrDefault(s => s.Position == p);
    public int CountKind(ShapeKind k) => Shapes.Count(s => s.Kind == k);
    public int CountColor(ShapeColor c) => Shapes.Count(s => s.Color == c);
    public bool Has(ShapeKind k, ShapeColor c) => Shapes.Any(s => s.Kind == k && s.Color == c);

    /// <summary>Attributes without geometry, e.g. "top:small-blue-star|left:large-red-circle".</summary>
    public string Signature => string.Join("|", Shapes.Select(s =>
        $"{ShapeWords.Name(s.Position)}:{ShapeWords.Name(s.Size)}-{ShapeWords.Name(s.Color)}-{ShapeWords.Name(s.Kind)}"));

    public override string ToString() => $"scene {Seed}: {Signature}";
}

/// <summary>A scene with its rendered pixels and PNG encoding.</summary>
public sealed record GeneratedScene(ShapesScene Scene, RgbImage Image, byte[] Png);
