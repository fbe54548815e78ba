namespace Llava.Vision;

/// <summary>
/// transformers 4.45 <c>CLIPImageProcessor.preprocess</c> for one image: resize (PIL-exact), center crop on
/// uint8, rescale (float64 multiply, cast to float32), normalize (float32 <c>(x - mean) / std</c>), CHW output.
/// </summary>
public sealed class ClipImageProcessor
{
    public ClipImageProcessorConfig Config { get; }

    /// <summary>Per channel, the float value each byte maps to after rescale + normalize.</summary>
    readonly float[][] lut;

    public ClipImageProcessor(ClipImageProcessorConfig? config = null)
    {
        Config = config ?? new ClipImageProcessorConfig();
        if (Config.ImageMean.Length != 3 || Config.ImageStd.Length != 3)
            throw new ArgumentException("image_mean and image_std must have 3 entries");
        lut = new float[3][];
        for (int c = 0; c < 3; c++)
        {
            lut[c] = new float[256];
            // numpy: mean/std become arrays of the image dtype (float32) before the float32 arithmetic.
            float mean = (float)Config.ImageMean[c], std = (float)Config.ImageStd[c];
            for (int v = 0; v < 256; v++)
            {
                // rescale(): image.astype(float64) * scale, then astype(float32); without rescale,
                // normalize() casts the uint8 image to float32.
                float x = Config.DoRescale ? (float)(v * Config.RescaleFactor) : v;
                if (Config.DoNormalize) x = (x - mean) / std;
                lut[c][v] = x;
            }
        }
    }

    public static ClipImageProcessor FromFile(string preprocessorConfigPath) =>
        new(ClipImageProcessorConfig.Load(preprocessorConfigPath));

    /// <summary>LLaVA's pad colour for this config: <c>tuple(int(x * 255) for x in image_mean)</c>.</summary>
    public (byte R, byte G, byte B) PadBackground => ComputePadBackground(Config);

    public static (byte R, byte G, byte B) ComputePadBackground(ClipImageProcessorConfig config)
    {
        static byte Channel(double m) => (byte)Math.Clamp((int)(m * 255), 0, 255);
        return (Channel(config.ImageMean[0]), Channel(config.ImageMean[1]), Channel(config.ImageMean[2]));
    }

    /// <summary>LLaVA's <c>expand2square</c>; see <see cref="ImageOps.ExpandToSquare"/>.</summary>
    public static RgbImage ExpandToSquare(RgbImage image, (byte R, byte G, byte B) background) =>
        ImageOps.ExpandToSquare(image, background);

    /// <summary>Normalized pixels, shape [3, H, W] row-major (H, W = crop size when center cropping).</summary>
    public float[] Preprocess(RgbImage image, PreprocessMode mode = PreprocessMode.Default) =>
        Preprocess(image, mode, out _, out _);

    public float[] Preprocess(RgbImage image, PreprocessMode mode, out int height, out int width)
    {
        var fitted = ResizeAndCrop(image, mode);
        height = fitted.Height;
        width = fitted.Width;
        return ToNormalizedChw(fitted);
    }

    /// <summary>The uint8 stages: optional pad to square, resize, center crop.</summary>
    public RgbImage ResizeAndCrop(RgbImage image, PreprocessMode mode = PreprocessMode.Default)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (mode == PreprocessMode.Pad) image = ImageOps.ExpandToSquare(image, PadBackground);
        if (Config.DoResize)
        {
            var (h, w) = GetResizeOutputSize(image.Height, image.Width, Config);
            image = PilResampler.Resize(image, w, h, Config.Resample);
        }
        if (Config.DoCenterCrop) image = ImageOps.CenterCrop(image, Config.CropHeight, Config.CropWidth);
        return image;
    }

    /// <summary>Rescale + normalize an RGB image into a CHW float tensor.</summary>
    public float[] ToNormalizedChw(RgbImage image)
    {
        int plane = image.Width * image.Height;
        var output = new float[3 * plane];
        var px = image.Pixels;
        float[] l0 = lut[0], l1 = lut[1], l2 = lut[2];
        for (int i = 0, p = 0; i < plane; i++, p += 3)
        {
            output[i] = l0[px[p]];
            output[plane + i] = l1[px[p + 1]];
            output[2 * plane + i] = l2[px[p + 2]];
        }
        return output;
    }

    /// <summary>The (height, width) the resize step produces for an input of the given size.</summary>
    public static (int Height, int Width) GetResizeOutputSize(int height, int width, ClipImageProcessorConfig config)
    {
        if (config.SizeShortestEdge is int n) return GetShortestEdgeOutputSize(height, width, n);
        if (config.SizeHeight is int h && config.SizeWidth is int w) return (h, w);
        throw new InvalidOperationException("size must contain 'shortest_edge' or 'height' and 'width'");
    }

    /// <summary>
    /// transformers' <c>get_resize_output_image_size(default_to_square=False)</c>: the short side becomes
    /// <paramref name="shortestEdge"/>, the long side <c>int(shortestEdge * long / short)</c> (truncated
    /// true division). Ties (square) count width as the short side, as in Python.
    /// </summary>
    public static (int Height, int Width) GetShortestEdgeOutputSize(int height, int width, int shortestEdge)
    {
        if (height <= 0 || width <= 0 || shortestEdge <= 0)
            throw new ArgumentOutOfRangeException(nameof(shortestEdge), $"sizes must be positive (image {width}x{height}, edge {shortestEdge})");
        bool widthShort = width <= height;
        long shortSide = widthShort ? width : height, longSide = widthShort ? height : width;
        // Python's int * int / int is a correctly rounded double division of exact integers; the product
        // fits a double exactly for any realistic size, so this matches bit for bit.
        int newLong = checked((int)((double)(shortestEdge * longSide) / shortSide));
        return widthShort ? (newLong, shortestEdge) : (shortestEdge, newLong);
    }
}
