using Llava.Training.Synthetic;
using Llava.Vision;

namespace Llava.Tests.Synthetic;

public sealed class ShapesWorldTests
{
    // The test's own nominal palette (approximate, independent of the generator's table).
    static readonly Dictionary<string, (int R, int G, int B)> Palette = new()
    {
        ["red"] = (215, 40, 40), ["green"] = (40, 165, 60), ["blue"] = (40, 85, 215),
        ["yellow"] = (235, 200, 30), ["purple"] = (140, 55, 185), ["orange"] = (245, 130, 25),
    };

    static string NearestColor((byte R, byte G, byte B) p) =>
        Palette.MinBy(kv => Sq(kv.Value.R - p.R) + Sq(kv.Value.G - p.G) + Sq(kv.Value.B - p.B)).Key;

    static int Sq(int x) => x * x;

    [Fact]
    public void SameSeed_SameSceneAndBytes()
    {
        var a = ShapesWorld.GenerateScene(1234);
        var b = ShapesWorld.GenerateScene(1234);
        Assert.Equal(a.Scene.Signature, b.Scene.Signature);
        Assert.Equal(a.Scene.Shapes, b.Scene.Shapes);
        Assert.Equal(a.Png, b.Png);
        Assert.Equal(a.Image.Pixels, b.Image.Pixels);
        Assert.Equal(a.Png, ShapesWorld.RenderPng(ShapesWorld.Layout(1234)));
        var c = ShapesWorld.GenerateScene(1235);
        Assert.NotEqual(a.Png, c.Png);
    }

    [Fact]
    public void Png_DecodesToTheRenderedPixels()
    {
        var g = ShapesWorld.GenerateScene(77, new ShapesWorldOptions { CanvasSize = 336 });
        Assert.Equal(336, g.Image.Width);
        var decoded = ImageDecoder.Decode(g.Png);
        Assert.Equal(g.Image.Pixels, decoded.Pixels);
        Assert.Equal(2, g.Png[25]); // IHDR colour type 2: RGB, no alpha channel
    }

    [Fact]
    public void Layouts_ObeyTheConstraints()
    {
        var shapeCounts = new int[6];
        var kinds = new HashSet<ShapeKind>();
        var colors = new HashSet<ShapeColor>();
        var positions = new HashSet<ShapePosition>();
        int repeatedKind = 0;
        foreach (int canvas in new[] { 224, 336 })
            for (int seed = 0; seed < 3000; seed++)
            {
                var scene = ShapesWorld.Layout(seed, new ShapesWorldOptions { CanvasSize = canvas });
                var shapes = scene.Shapes;
                shapeCounts[shapes.Count]++;
                Assert.InRange(shapes.Count, 1, 4);
                Assert.Equal(shapes.Count, shapes.Select(s => s.Position).Distinct().Count());
                Assert.Equal(shapes.Count, shapes.Select(s => (s.Kind, s.Color)).Distinct().Count());
                if (shapes.Select(s => s.Kind).Distinct().Count() < shapes.Count) repeatedKind++;
                float third = canvas / 3f;
                foreach (var s in shapes)
                {
                    kinds.Add(s.Kind); colors.Add(s.Color); positions.Add(s.Position);
                    // The shape's bounding square lies in its own grid cell (left = middle-left cell, ...).
                    var (col, row) = s.Position switch
                    {
                        ShapePosition.Left => (0, 1), ShapePosition.Right => (2, 1), ShapePosition.Top => (1, 0),
                        ShapePosition.Bottom => (1, 2), _ => (1, 1),
                    };
                    Assert.True(s.CenterX - s.Radius >= col * third && s.CenterX + s.Radius <= (col + 1) * third, $"{scene}: {s}");
                    Assert.True(s.CenterY - s.Radius >= row * third && s.CenterY + s.Radius <= (row + 1) * third, $"{scene}: {s}");
                    float rel = s.Radius / third;
                    if (s.Size == ShapeSize.Large) Assert.InRange(rel, 0.35f, 0.41f); else Assert.InRange(rel, 0.15f, 0.22f);
                }
                // Pairwise: bounding squares never intersect.
                foreach (var p in shapes)
                    foreach (var q in shapes)
                        if (p != q)
                            Assert.True(Math.Abs(p.CenterX - q.CenterX) >= p.Radius + q.Radius || Math.Abs(p.CenterY - q.CenterY) >= p.Radius + q.Radius);
                Assert.InRange(Math.Min(scene.Background.R, Math.Min(scene.Background.G, scene.Background.B)), 220, 255);
            }
        for (int n = 1; n <= 4; n++) Assert.InRange(shapeCounts[n], 1200, 1800); // ~1500 each
        Assert.Equal(4, kinds.Count);
        Assert.Equal(6, colors.Count);
        Assert.Equal(5, positions.Count);
        Assert.True(repeatedKind > 500, "scenes with two shapes of one kind (different colours) should occur");
    }

    [Theory]
    [InlineData(224, 0, 200)]
    [InlineData(336, 10000, 50)]
    public void Pixels_MatchTheDescription(int canvas, int firstSeed, int scenes)
    {
        for (int seed = firstSeed; seed < firstSeed + scenes; seed++)
        {
            var g = ShapesWorld.GenerateScene(seed, new ShapesWorldOptions { CanvasSize = canvas });
            var img = g.Image;
            var bg = g.Scene.Background;
            float third = canvas / 3f;
            bool IsBackground((byte R, byte G, byte B) p) => Math.Abs(p.R - bg.R) + Math.Abs(p.G - bg.G) + Math.Abs(p.B - bg.B) <= 6;

            foreach (var s in g.Scene.Shapes)
            {
                // The centre pixel is solidly the described colour.
                var centre = img.GetPixel((int)MathF.Round(s.CenterX), (int)MathF.Round(s.CenterY));
                Assert.Equal(s.Color.ToString().ToLowerInvariant(), NearestColor(centre));
                // The extent of the shape's pixels gives its size class.
                int x0 = int.MaxValue, x1 = -1, y0 = int.MaxValue, y1 = -1;
                int cx0 = (int)(s.Position is ShapePosition.Left ? 0 : s.Position is ShapePosition.Right ? 2 * third : third);
                int cy0 = (int)(s.Position is ShapePosition.Top ? 0 : s.Position is ShapePosition.Bottom ? 2 * third : third);
                for (int y = cy0; y < cy0 + (int)third; y++)
                    for (int x = cx0; x < cx0 + (int)third; x++)
                    {
                        var p = img.GetPixel(x, y);
                        if (Math.Abs(p.R - s.Fill.R) + Math.Abs(p.G - s.Fill.G) + Math.Abs(p.B - s.Fill.B) > 20) continue;
                        x0 = Math.Min(x0, x); x1 = Math.Max(x1, x); y0 = Math.Min(y0, y); y1 = Math.Max(y1, y);
                    }
                float extent = Math.Max(x1 - x0 + 1, y1 - y0 + 1) / third;
                if (s.Size == ShapeSize.Large) Assert.True(extent > 0.58f, $"{g.Scene}: {s} extent {extent}");
                else Assert.True(extent < 0.46f, $"{g.Scene}: {s} extent {extent}");
            }

            // Empty positions are empty; every non-background pixel is inside exactly one shape's bounding square.
            foreach (var pos in Enum.GetValues<ShapePosition>().Where(p => g.Scene.At(p) == null))
            {
                var (rx0, ry0, rx1, ry1) = ShapeWords.Region(pos, canvas);
                Assert.True(IsBackground(img.GetPixel((int)((rx0 + rx1) / 2), (int)((ry0 + ry1) / 2))));
            }
            for (int y = 0; y < canvas; y++)
                for (int x = 0; x < canvas; x++)
                {
                    if (IsBackground(img.GetPixel(x, y))) continue;
                    int owners = g.Scene.Shapes.Count(s => Math.Abs(x + 0.5f - s.CenterX) <= s.Radius + 1 && Math.Abs(y + 0.5f - s.CenterY) <= s.Radius + 1);
                    Assert.True(owners == 1, $"{g.Scene}: pixel ({x},{y}) in {owners} shapes");
                }
        }
    }

    [Fact]
    public void Options_AreValidated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ShapesWorld.Layout(1, new ShapesWorldOptions { MaxShapes = 6 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ShapesWorld.Layout(1, new ShapesWorldOptions { MinShapes = 3, MaxShapes = 2 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ShapesWorld.Layout(1, new ShapesWorldOptions { CanvasSize = 10 }));
        var five = ShapesWorld.Layout(5, new ShapesWorldOptions { MinShapes = 5, MaxShapes = 5 });
        Assert.Equal(5, five.Shapes.Count);
    }
}
