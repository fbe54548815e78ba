using SkiaSharp;

namespace Llava.Training.Trainer;

/// <summary>The loss curve as a PNG: axes with ticks, the per-step loss, an exponentially smoothed loss, labels.</summary>
public static class LossCurvePlot
{
    public const int Width = 900, Height = 540;
    public static readonly SKColor Background = SKColors.White;
    public static readonly SKColor RawColor = new(120, 160, 220);
    public static readonly SKColor SmoothColor = new(200, 40, 40);

    /// <summary>EMA with TensorBoard's weighting and debiasing (weight 0.6 for short runs, up to 0.9).</summary>
    public static double[] Smooth(IReadOnlyList<double> values, double? weight = null)
    {
        double w = weight ?? Math.Clamp(1 - 10.0 / Math.Max(values.Count, 1), 0.6, 0.9);
        var r = new double[values.Count];
        double last = 0;
        for (int i = 0; i < values.Count; i++)
        {
            last = last * w + (1 - w) * values[i];
            r[i] = last / (1 - Math.Pow(w, i + 1));
        }
        return r;
    }

    public static void Write(string path, IReadOnlyList<StepMetrics> history, string title)
    {
        using var surface = SKSurface.Create(new SKImageInfo(Width, Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var c = surface.Canvas;
        c.Clear(Background);
        const float left = 80, right = 30, top = 50, bottom = 60;
        float pw = Width - left - right, ph = Height - top - bottom;
        using var font = new SKFont(SKTypeface.Default, 14);
        using var titleFont = new SKFont(SKTypeface.Default, 18);
        using var text = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };
        using var grid = new SKPaint { Color = new SKColor(225, 225, 225), StrokeWidth = 1, Style = SKPaintStyle.Stroke };
        c.DrawText(title, left, 30, titleFont, text);

        var pts = history.Where(m => double.IsFinite(m.Loss)).ToList();
        double minX = pts.Count > 0 ? pts[0].Step : 0, maxX = pts.Count > 0 ? pts[^1].Step : 1;
        if (maxX <= minX) maxX = minX + 1;
        double minY = pts.Count > 0 ? pts.Min(m => m.Loss) : 0, maxY = pts.Count > 0 ? pts.Max(m => m.Loss) : 1;
        if (maxY - minY < 1e-9) { minY -= 0.5; maxY += 0.5; }
        double pad = (maxY - minY) * 0.05;
        minY = Math.Max(0, minY - pad); maxY += pad;
        float X(double v) => left + (float)((v - minX) / (maxX - minX)) * pw;
        float Y(double v) => top + ph - (float)((v - minY) / (maxY - minY)) * ph;

        for (int i = 0; i <= 5; i++)
        {
            double yv = minY + (maxY - minY) * i / 5;
            float y = Y(yv);
            c.DrawLine(left, y, left + pw, y, grid);
            c.DrawLine(left - 5, y, left, y, axis);
            c.DrawText(yv.ToString(yv < 10 ? "F3" : "F1", System.Globalization.CultureInfo.InvariantCulture), left - 8, y + 5, SKTextAlign.Right, font, text);
            double xv = minX + (maxX - minX) * i / 5;
            float x = X(xv);
            c.DrawLine(x, top, x, top + ph, grid);
            c.DrawLine(x, top + ph, x, top + ph + 5, axis);
            c.DrawText(Math.Round(xv).ToString(System.Globalization.CultureInfo.InvariantCulture), x, top + ph + 22, SKTextAlign.Center, font, text);
        }
        c.DrawLine(left, top, left, top + ph, axis);
        c.DrawLine(left, top + ph, left + pw, top + ph, axis);
        c.DrawText("optimizer step", left + pw / 2, Height - 15, SKTextAlign.Center, font, text);
        c.Save();
        c.RotateDegrees(-90, 20, top + ph / 2);
        c.DrawText("loss", 20, top + ph / 2 + 5, SKTextAlign.Center, font, text);
        c.Restore();

        if (pts.Count > 0)
        {
            using var raw = new SKPaint { Color = RawColor, StrokeWidth = 1.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };
            using var smooth = new SKPaint { Color = SmoothColor, StrokeWidth = 2.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };
            var s = Smooth(pts.Select(m => m.Loss).ToList());
            using var rawPath = new SKPath();
            using var smoothPath = new SKPath();
            for (int i = 0; i < pts.Count; i++)
            {
                float x = X(pts[i].Step);
                if (i == 0) { rawPath.MoveTo(x, Y(pts[i].Loss)); smoothPath.MoveTo(x, Y(s[i])); }
                else { rawPath.LineTo(x, Y(pts[i].Loss)); smoothPath.LineTo(x, Y(s[i])); }
            }
            if (pts.Count == 1) { c.DrawCircle(X(pts[0].Step), Y(pts[0].Loss), 3, raw); }
            c.DrawPath(rawPath, raw);
            c.DrawPath(smoothPath, smooth);
            // Legend.
            float lx = left + pw - 170, ly = top + 10;
            c.DrawLine(lx, ly + 8, lx + 30, ly + 8, raw);
            c.DrawText("loss", lx + 38, ly + 13, font, text);
            c.DrawLine(lx, ly + 28, lx + 30, ly + 28, smooth);
            c.DrawText("smoothed (EMA)", lx + 38, ly + 33, font, text);
        }
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        using var fs = File.Create(path);
        data.SaveTo(fs);
    }
}
