namespace Llava.Vision.Tests;

/// <summary>
/// Deliberately plain transcription of Pillow's 8-bit resample (per pixel, per channel, horizontal pass over
/// all rows, bicubic/bilinear only) used as an oracle for the optimised <see cref="PilResampler"/>.
/// </summary>
internal static class ScalarPilResize
{
    const int Bits = 22;

    public static RgbImage Resize(RgbImage src, int outW, int outH, ResampleFilter f)
    {
        var tmp = src;
        if (outW != src.Width)
        {
            var (xmin, xcnt, k) = Coeffs(src.Width, outW, f);
            tmp = new RgbImage(outW, src.Height);
            for (int y = 0; y < src.Height; y++)
                for (int x = 0; x < outW; x++)
                    for (int c = 0; c < 3; c++)
                    {
                        int ss = 1 << (Bits - 1);
                        for (int i = 0; i < xcnt[x]; i++) ss += src.Pixels[(y * src.Width + xmin[x] + i) * 3 + c] * k[x][i];
                        tmp.Pixels[(y * outW + x) * 3 + c] = Clip(ss);
                    }
        }
        if (outH == src.Height) return outW == src.Width ? src.Clone() : tmp;
        var (ymin, ycnt, ky) = Coeffs(src.Height, outH, f);
        var dst = new RgbImage(outW, outH);
        for (int y = 0; y < outH; y++)
            for (int x = 0; x < outW; x++)
                for (int c = 0; c < 3; c++)
                {
                    int ss = 1 << (Bits - 1);
                    for (int i = 0; i < ycnt[y]; i++) ss += tmp.Pixels[((ymin[y] + i) * outW + x) * 3 + c] * ky[y][i];
                    dst.Pixels[(y * outW + x) * 3 + c] = Clip(ss);
                }
        return dst;
    }

    static byte Clip(int ss) => (byte)Math.Clamp(ss >> Bits, 0, 255);

    static (int[] Min, int[] Count, int[][] K) Coeffs(int inSize, int outSize, ResampleFilter f)
    {
        double scale = (double)inSize / outSize;
        double fs = Math.Max(1.0, scale);
        double support = (f == ResampleFilter.Bicubic ? 2.0 : 1.0) * fs;
        var mins = new int[outSize];
        var counts = new int[outSize];
        var ks = new int[outSize][];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            int xmin = Math.Max(0, (int)(center - support + 0.5));
            int xmax = Math.Min(inSize, (int)(center + support + 0.5)) - xmin;
            var w = new double[xmax];
            double sum = 0;
            for (int x = 0; x < xmax; x++)
            {
                double t = Math.Abs((x + xmin - center + 0.5) * (1.0 / fs));
                w[x] = f == ResampleFilter.Bicubic
                    ? t < 1 ? (1.5 * t - 2.5) * t * t + 1 : t < 2 ? (((t - 5) * t + 8) * t - 4) * -0.5 : 0
                    : t < 1 ? 1 - t : 0;
                sum += w[x];
            }
            ks[xx] = new int[xmax];
            for (int x = 0; x < xmax; x++)
            {
                double n = sum != 0 ? w[x] / sum : w[x];
                ks[xx][x] = n < 0 ? (int)(-0.5 + n * (1 << Bits)) : (int)(0.5 + n * (1 << Bits));
            }
            mins[xx] = xmin;
            counts[xx] = xmax;
        }
        return (mins, counts, ks);
    }
}
