using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llava.Vision;

/// <summary>
/// Bit-exact reimplementation of Pillow's 8-bit <c>ImagingResample</c> (libImaging/Resample.c), which is what
/// <c>PIL.Image.resize(size, resample)</c> runs for RGB images: a separable convolution, horizontal pass first
/// into an 8-bit intermediate, then vertical. Filters are widened by the downscale factor (antialiasing),
/// normalised to sum 1, converted to fixed point with 22 fractional bits, and each pass rounds (adds half)
/// and clips to 0..255.
/// </summary>
public static class PilResampler
{
    const int PrecisionBits = 32 - 8 - 2;
    const int Half = 1 << (PrecisionBits - 1);

    /// <summary>Resizes to <paramref name="width"/> x <paramref name="height"/>. Same size returns a copy, like PIL.</summary>
    public static RgbImage Resize(RgbImage src, int width, int height, ResampleFilter filter = ResampleFilter.Bicubic)
    {
        ArgumentNullException.ThrowIfNull(src);
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), $"target size must be positive, got {width}x{height}");
        if (filter == ResampleFilter.Nearest)
            throw new NotSupportedException("nearest-neighbour resampling (resample=0) is not implemented; use bilinear (2) or bicubic (3)");
        if (!Enum.IsDefined(filter)) throw new ArgumentOutOfRangeException(nameof(filter), $"unknown resample filter {(int)filter}");

        bool needHorizontal = width != src.Width;
        bool needVertical = height != src.Height;
        if (!needHorizontal && !needVertical) return src.Clone();

        var vert = ResampleCoefficients.Compute(src.Height, height, filter);
        // Rows of the source the vertical pass reads; the horizontal pass only produces those.
        int rowFirst = vert.Start[0];
        int rowLast = vert.Start[height - 1] + vert.Count[height - 1];

        RgbImage mid = src;
        int rowOffset = 0;
        if (needHorizontal)
        {
            var horiz = ResampleCoefficients.Compute(src.Width, width, filter);
            mid = new RgbImage(width, rowLast - rowFirst);
            HorizontalPass(src, mid, rowFirst, horiz);
            rowOffset = rowFirst;
        }
        if (!needVertical) return mid;

        var dst = new RgbImage(width, height);
        VerticalPass(mid, dst, rowOffset, vert);
        return dst;
    }

    static bool Worth(long multiplyAdds) => multiplyAdds > 2_000_000;

    static unsafe void HorizontalPass(RgbImage src, RgbImage dst, int rowFirst, ResampleCoefficients c)
    {
        int outW = dst.Width, rows = dst.Height, k = c.KernelSize;
        int srcStride = src.Stride, dstStride = dst.Stride, srcWidth = src.Width;
        var srcPixels = src.Pixels;
        var dstPixels = dst.Pixels;
        var weights = c.Weights;
        var starts = c.Start;
        var counts = c.Count;

        void Row(int r)
        {
            fixed (byte* sBase = srcPixels, dBase = dstPixels)
            fixed (int* wBase = weights)
            {
                byte* s = sBase + (long)(r + rowFirst) * srcStride;
                byte* d = dBase + (long)r * dstStride;
                // A 4-byte load at the row's last pixel would read one byte past the image; rows before the
                // last always have a following row, so only the very last row needs the guard.
                bool lastRow = r + rowFirst == src.Height - 1;
                for (int xx = 0; xx < outW; xx++)
                {
                    int* w = wBase + xx * k;
                    byte* p = s + starts[xx] * 3;
                    int n = counts[xx];
                    if (Sse41.IsSupported && !(lastRow && starts[xx] + n == srcWidth))
                    {
                        // Lanes: R, G, B, (next pixel's R, ignored). Integer sums, so identical to the scalar path.
                        var acc = Vector128.Create(Half);
                        for (int x = 0; x < n; x++, p += 3)
                            acc += Sse41.ConvertToVector128Int32(p) * Vector128.Create(w[x]);
                        d[0] = Clip8(acc.GetElement(0));
                        d[1] = Clip8(acc.GetElement(1));
                        d[2] = Clip8(acc.GetElement(2));
                    }
                    else
                    {
                        int s0 = Half, s1 = Half, s2 = Half;
                        for (int x = 0; x < n; x++, p += 3)
                        {
                            int kv = w[x];
                            s0 += p[0] * kv;
                            s1 += p[1] * kv;
                            s2 += p[2] * kv;
                        }
                        d[0] = Clip8(s0);
                        d[1] = Clip8(s1);
                        d[2] = Clip8(s2);
                    }
                    d += 3;
                }
            }
        }

        if (Worth((long)rows * outW * k * 3)) Parallel.For(0, rows, Row);
        else for (int r = 0; r < rows; r++) Row(r);
    }

    static unsafe void VerticalPass(RgbImage src, RgbImage dst, int rowOffset, ResampleCoefficients c)
    {
        int n = dst.Stride, k = c.KernelSize;
        var srcPixels = src.Pixels;
        var dstPixels = dst.Pixels;
        var weights = c.Weights;
        var starts = c.Start;
        var counts = c.Count;

        void Row(int yy)
        {
            // Integer accumulation is exact, so accumulating tap by tap over whole rows (cache friendly)
            // gives the same sums as Pillow's per-pixel loop.
            var acc = System.Buffers.ArrayPool<int>.Shared.Rent(n);
            try
            {
                fixed (byte* sBase = srcPixels, dBase = dstPixels)
                fixed (int* a = acc)
                {
                    for (int i = 0; i < n; i++) a[i] = Half;
                    int y0 = starts[yy] - rowOffset, taps = counts[yy];
                    for (int t = 0; t < taps; t++)
                    {
                        int kv = weights[yy * k + t];
                        byte* s = sBase + (long)(y0 + t) * n;
                        for (int i = 0; i < n; i++) a[i] += s[i] * kv;
                    }
                    byte* d = dBase + (long)yy * n;
                    for (int i = 0; i < n; i++) d[i] = Clip8(a[i]);
                }
            }
            finally
            {
                System.Buffers.ArrayPool<int>.Shared.Return(acc);
            }
        }

        int rows = dst.Height;
        if (Worth((long)rows * n * k)) Parallel.For(0, rows, Row);
        else for (int r = 0; r < rows; r++) Row(r);
    }

    /// <summary>Pillow's clip8: arithmetic shift out the fraction, clamp to a byte.</summary>
    static byte Clip8(int v)
    {
        v >>= PrecisionBits;
        return v < 0 ? (byte)0 : v > 255 ? (byte)255 : (byte)v;
    }
}
