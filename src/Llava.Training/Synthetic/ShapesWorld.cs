using System.Runtime.InteropServices;
using Llava.Vision;
using SkiaSharp;

namespace Llava.Training.Synthetic;

/// <summary>
/// The synthetic visual world: seeded scenes of 1-4 filled shapes on a light background, drawn with SkiaSharp
/// (antialiased). Same seed and options → same scene, same pixels, same PNG bytes.
/// <para>Layout rules. The canvas is a 3x3 grid; positions are the five cells of a plus sign (see
/// <see cref="ShapePosition"/>). Each shape's bounding square (centre ± radius) lies inside its cell with a margin
/// of 5% of the cell, so shapes never overlap or touch, and a shape's position is read off unambiguously. A large
/// shape's radius is 36-40% of the cell, a small one's 16-21%: a large shape spans at least 0.64 of a cell, a small
/// one at most 0.42. At most one shape per cell; never two shapes with the
/// same kind and colour (so "the red triangle" always names one shape).</para>
/// </summary>
public static class ShapesWorld
{
    public const float LargeMin = 0.36f, LargeMax = 0.40f, SmallMin = 0.16f, SmallMax = 0.21f, Margin = 0.05f;

    /// <summary>Lays out, renders and PNG-encodes the scene for <paramref name="seed"/>.</summary>
    public static GeneratedScene GenerateScene(int seed, ShapesWorldOptions? options = null)
    {
        options ??= ShapesWorldOptions.Default;
        var scene = Layout(seed, options);
        using var bitmap = Draw(scene);
        return new GeneratedScene(scene, ToRgbImage(bitmap), Encode(bitmap, options.PngCompressionLevel));
    }

    /// <summary>The scene description only (no drawing): cheap.</summary>
    public static ShapesScene Layout(int seed, ShapesWorldOptions? options = null)
    {
        options ??= ShapesWorldOptions.Default;
        options.Validate();
        var rng = new ShapesRng(ShapesRng.Mix((ulong)(uint)seed, 0x5CE9E));
        int size = options.CanvasSize;
        float cell = size / 3f;

        int count = rng.Next(options.MinShapes, options.MaxShapes);
        var positions = ShapeWords.Positions.ToList();
        rng.Shuffle(positions);

        // Light background: a base grey level 232-248, each channel nudged a little for a faint tint.
        int baseLevel = rng.Next(232, 248);
        var background = new Rgb(Light(baseLevel + rng.Next(-6, 6)), Light(baseLevel + rng.Next(-6, 6)), Light(baseLevel + rng.Next(-6, 6)));

        var shapes = new List<SceneShape>(count);
        var used = new HashSet<(ShapeKind, ShapeColor)>();
        for (int i = 0; i < count; i++)
        {
            ShapeKind kind;
            ShapeColor color;
            do
            {
                kind = rng.Pick(ShapeWords.Kinds);
                color = rng.Pick(ShapeWords.Colors);
            } while (!used.Add((kind, color)));
            var shapeSize = rng.Chance(0.5) ? ShapeSize.Large : ShapeSize.Small;
            var position = positions[i];
            float radius = cell * (shapeSize == ShapeSize.Large ? rng.Range(LargeMin, LargeMax) : rng.Range(SmallMin, SmallMax));
            float slack = Math.Max(0f, cell * (0.5f - Margin) - radius);
            var (x0, y0, _, _) = ShapeWords.Region(position, size);
            float cx = x0 + cell / 2 + rng.Range(-slack, slack);
            float cy = y0 + cell / 2 + rng.Range(-slack, slack);
            var nominal = ShapeWords.Palette(color);
            int j = options.ColorJitter;
            var fill = new Rgb(Clamp(nominal.R + rng.Next(-j, j)), Clamp(nominal.G + rng.Next(-j, j)), Clamp(nominal.B + rng.Next(-j, j)));
            shapes.Add(new SceneShape(kind, color, shapeSize, position, cx, cy, radius, fill));
        }
        return new ShapesScene(seed, size, background, shapes);
    }

    /// <summary>Renders a scene to RGB pixels.</summary>
    public static RgbImage Render(ShapesScene scene)
    {
        using var bitmap = Draw(scene);
        return ToRgbImage(bitmap);
    }

    /// <summary>Renders a scene straight to PNG bytes.</summary>
    public static byte[] RenderPng(ShapesScene scene, int compressionLevel = 3)
    {
        using var bitmap = Draw(scene);
        return Encode(bitmap, compressionLevel);
    }

    static SKBitmap Draw(ShapesScene scene)
    {
        int size = scene.CanvasSize;
        var bitmap = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(new SKColor(scene.Background.R, scene.Background.G, scene.Background.B));
        using var paint = new SKPaint { IsAntialias = true, Style = SKPaintStyle.Fill };
        foreach (var s in scene.Shapes)
        {
            paint.Color = new SKColor(s.Fill.R, s.Fill.G, s.Fill.B);
            float x = s.CenterX, y = s.CenterY, r = s.Radius;
            switch (s.Kind)
            {
                case ShapeKind.Circle:
                    canvas.DrawCircle(x, y, r, paint);
                    break;
                case ShapeKind.Square:
                {
                    float h = r * 0.9f;
                    canvas.DrawRect(x - h, y - h, 2 * h, 2 * h, paint);
                    break;
                }
                case ShapeKind.Triangle:
                {
                    // Equilateral, apex up; circumradius 1.1r, moved down by a quarter of it so the bounding box is
                    // centred: apex at y - 0.825r, base at y + 0.825r, half base 0.95r.
                    float rt = r * 1.1f, dy = rt / 4;
                    using var path = new SKPath();
                    for (int k = 0; k < 3; k++)
                    {
                        double a = -Math.PI / 2 + k * 2 * Math.PI / 3;
                        var p = new SKPoint(x + rt * (float)Math.Cos(a), y + dy + rt * (float)Math.Sin(a));
                        if (k == 0) path.MoveTo(p); else path.LineTo(p);
                    }
                    path.Close();
                    canvas.DrawPath(path, paint);
                    break;
                }
                case ShapeKind.Star:
                {
                    // Five points, one up; inner radius half the outer so small stars stay star-like.
                    using var path = new SKPath();
                    for (int k = 0; k < 10; k++)
                    {
                        double a = -Math.PI / 2 + k * Math.PI / 5;
                        float rr = k % 2 == 0 ? r : r * 0.5f;
                        var p = new SKPoint(x + rr * (float)Math.Cos(a), y + rr * (float)Math.Sin(a));
                        if (k == 0) path.MoveTo(p); else path.LineTo(p);
                    }
                    path.Close();
                    canvas.DrawPath(path, paint);
                    break;
                }
            }
        }
        canvas.Flush();
        return bitmap;
    }

    static RgbImage ToRgbImage(SKBitmap bitmap)
    {
        var image = new RgbImage(bitmap.Width, bitmap.Height);
        var src = bitmap.GetPixelSpan();
        var dst = image.Pixels;
        for (int i = 0, j = 0; j < dst.Length; i += 4, j += 3)
        {
            dst[j] = src[i];
            dst[j + 1] = src[i + 1];
            dst[j + 2] = src[i + 2];
        }
        return image;
    }

    static byte[] Encode(SKBitmap bitmap, int level)
    {
        using var pixmap = bitmap.PeekPixels();
        using var data = pixmap.Encode(new SKPngEncoderOptions(SKPngEncoderFilterFlags.None, level))
            ?? throw new InvalidOperationException("SkiaSharp failed to encode PNG");
        return data.ToArray();
    }

    static byte Light(int v) => (byte)Math.Clamp(v, 220, 252);
    static byte Clamp(int v) => (byte)Math.Clamp(v, 0, 255);
}
