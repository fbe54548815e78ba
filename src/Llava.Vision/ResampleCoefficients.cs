namespace Llava.Vision;

/// <summary>
/// Per-output-pixel filter taps for one axis, computed exactly as Pillow's <c>precompute_coeffs</c> followed by
/// <c>normalize_coeffs_8bpc</c>: same double arithmetic in the same order, so the fixed-point weights are
/// identical bit for bit.
/// </summary>
internal sealed class ResampleCoefficients
{
    /// <summary>Maximum taps per output pixel (stride of <see cref="Weights"/>).</summary>
    public int KernelSize { get; }
    /// <summary>First input index read for each output pixel.</summary>
    public int[] Start { get; }
    /// <summary>Number of input pixels read for each output pixel.</summary>
    public int[] Count { get; }
    /// <summary>Fixed-point weights (22 fractional bits), <c>KernelSize</c> per output pixel.</summary>
    public int[] Weights { get; }

    ResampleCoefficients(int kernelSize, int[] start, int[] count, int[] weights)
    {
        KernelSize = kernelSize;
        Start = start;
        Count = count;
        Weights = weights;
    }

    public static ResampleCoefficients Compute(int inSize, int outSize, ResampleFilter filter)
    {
        const int precisionBits = 32 - 8 - 2;
        double filterSupport = Support(filter);
        // Pillow: box = (0, 0, in_w, in_h) as floats, scale = (in1 - in0) / outSize.
        double scale = (double)inSize / outSize;
        double filterScale = scale < 1.0 ? 1.0 : scale;
        double support = filterSupport * filterScale;
        int ksize = (int)Math.Ceiling(support) * 2 + 1;
        if (outSize > int.MaxValue / (ksize * sizeof(double))) throw new OutOfMemoryException("resample kernel too large");

        var start = new int[outSize];
        var count = new int[outSize];
        var weights = new int[outSize * ksize];
        var k = new double[ksize];
        double ss = 1.0 / filterScale;
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            double ww = 0.0;
            // C casts truncate toward zero; negatives are clamped right after, as in Pillow.
            int xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            for (int x = 0; x < xmax; x++)
            {
                double w = Evaluate(filter, (x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++)
            {
                if (ww != 0.0) k[x] /= ww;
            }
            for (int x = 0; x < xmax; x++)
            {
                double v = k[x] * (1 << precisionBits);
                weights[xx * ksize + x] = k[x] < 0 ? (int)(-0.5 + v) : (int)(0.5 + v);
            }
            start[xx] = xmin;
            count[xx] = xmax;
        }
        return new ResampleCoefficients(ksize, start, count, weights);
    }

    static double Support(ResampleFilter filter) => filter switch
    {
        ResampleFilter.Box => 0.5,
        ResampleFilter.Bilinear => 1.0,
        ResampleFilter.Hamming => 1.0,
        ResampleFilter.Bicubic => 2.0,
        ResampleFilter.Lanczos => 3.0,
        _ => throw new NotSupportedException($"resample filter {filter} has no convolution kernel"),
    };

    /// <summary>Pillow's filter functions, with its exact expression order.</summary>
    public static double Evaluate(ResampleFilter filter, double x)
    {
        switch (filter)
        {
            case ResampleFilter.Box:
                return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
            case ResampleFilter.Bilinear:
                if (x < 0.0) x = -x;
                return x < 1.0 ? 1.0 - x : 0.0;
            case ResampleFilter.Hamming:
                if (x < 0.0) x = -x;
                if (x == 0.0) return 1.0;
                if (x >= 1.0) return 0.0;
                x *= Math.PI;
                // Pillow writes 0.54f / 0.46f: float constants promoted to double.
                return Math.Sin(x) / x * ((double)0.54f + (double)0.46f * Math.Cos(x));
            case ResampleFilter.Bicubic:
            {
                const double a = -0.5;
                if (x < 0.0) x = -x;
                if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
                if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
                return 0.0;
            }
            case ResampleFilter.Lanczos:
                return -3.0 <= x && x < 3.0 ? Sinc(x) * Sinc(x / 3) : 0.0;
            default:
                throw new NotSupportedException($"resample filter {filter} has no convolution kernel");
        }
    }

    static double Sinc(double x)
    {
        if (x == 0.0) return 1.0;
        x *= Math.PI;
        return Math.Sin(x) / x;
    }
}
