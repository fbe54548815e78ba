using Llava.Tests;
using Xunit.Abstractions;

namespace Llava.Vision.Tests;

/// <summary>Compares full preprocessing against transformers 4.45 + Pillow 11.1 outputs in the fixtures.</summary>
public class ReferenceParityTests(ITestOutputHelper output)
{
    static readonly ClipImageProcessor Processor =
        ClipImageProcessor.FromFile(Fixtures.TinyPath("hf", "preprocessor_config.json"));

    static (float[] Ours, float[] Reference) Run(string image, PreprocessMode mode)
    {
        string suffix = mode == PreprocessMode.Pad ? "pad" : "default";
        string stem = Path.GetFileNameWithoutExtension(image);
        var (reference, shape) = SafetensorsTestReader.ReadF32(
            Fixtures.TinyPath("reference", $"{stem}__{suffix}.safetensors"), "pixel_values");
        Assert.Equal([3, 336, 336], shape);
        var ours = Processor.Preprocess(ImageDecoder.Decode(Fixtures.TinyPath("images", image)), mode, out int h, out int w);
        Assert.Equal((336, 336), (h, w));
        return (ours, reference);
    }

    [Theory]
    [InlineData("synthetic_500x300.png", PreprocessMode.Default)]
    [InlineData("synthetic_500x300.png", PreprocessMode.Pad)]
    [InlineData("tiny_37x61.png", PreprocessMode.Default)]
    [InlineData("tiny_37x61.png", PreprocessMode.Pad)]
    public void PngMatchesTransformers(string image, PreprocessMode mode)
    {
        var (ours, reference) = Run(image, mode);
        double maxAbs = 0;
        for (int i = 0; i < ours.Length; i++) maxAbs = Math.Max(maxAbs, Math.Abs(ours[i] - reference[i]));
        output.WriteLine($"{image} {mode}: max abs diff {maxAbs:E3}");
        Assert.True(maxAbs <= 1e-5, $"max abs diff {maxAbs}");
    }

    /// <summary>
    /// PIL decodes the JPEG with its bundled libjpeg-turbo, we with Skia's bundled libjpeg-turbo. Measured on this
    /// machine: bit-identical (max abs 0, mean abs 0, in both modes) for this 4:2:0 baseline JPEG, i.e. Skia uses
    /// the same integer "islow" IDCT and "fancy" (triangle-filter) chroma upsampling as PIL. A different decoder
    /// build could move single pixels by 1-2 levels (~0.015-0.03 after /255/std, less after the resize), so the
    /// bounds below are the measured exactness with float slack only: loosen them only after checking the
    /// decoder's IDCT / upsampling settings, not to hide a preprocessing bug.
    /// </summary>
    [Theory]
    [InlineData(PreprocessMode.Default)]
    [InlineData(PreprocessMode.Pad)]
    public void JpegCloseToTransformers(PreprocessMode mode)
    {
        var (ours, reference) = Run("extreme_ironing.jpg", mode);
        double maxAbs = 0, sumAbs = 0;
        int differing = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            double d = Math.Abs(ours[i] - reference[i]);
            maxAbs = Math.Max(maxAbs, d);
            sumAbs += d;
            if (d > 1e-5) differing++;
        }
        double meanAbs = sumAbs / ours.Length;
        output.WriteLine($"extreme_ironing {mode}: max abs {maxAbs:E3}, mean abs {meanAbs:E3}, values differing {differing}/{ours.Length}");
        Assert.True(maxAbs <= JpegMaxAbs, $"max abs diff {maxAbs}");
        Assert.True(meanAbs <= JpegMeanAbs, $"mean abs diff {meanAbs}");
    }

    const double JpegMaxAbs = 1e-6;
    const double JpegMeanAbs = 1e-7;
}
