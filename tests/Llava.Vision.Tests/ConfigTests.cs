using Llava.Tests;

namespace Llava.Vision.Tests;

public class ConfigTests
{
    [Fact]
    public void LoadsFixtureConfig()
    {
        var cfg = ClipImageProcessorConfig.Load(Fixtures.TinyPath("hf", "preprocessor_config.json"));
        Assert.True(cfg.DoResize);
        Assert.Equal(336, cfg.SizeShortestEdge);
        Assert.Null(cfg.SizeHeight);
        Assert.Equal(ResampleFilter.Bicubic, cfg.Resample);
        Assert.True(cfg.DoCenterCrop);
        Assert.Equal((336, 336), (cfg.CropHeight, cfg.CropWidth));
        Assert.True(cfg.DoRescale);
        Assert.Equal(1.0 / 255, cfg.RescaleFactor);
        Assert.True(cfg.DoNormalize);
        Assert.Equal([0.48145466, 0.4578275, 0.40821073], cfg.ImageMean);
        Assert.Equal([0.26862954, 0.26130258, 0.27577711], cfg.ImageStd);
        Assert.True(cfg.DoConvertRgb);
        Assert.Equal(((byte)122, (byte)116, (byte)104), new ClipImageProcessor(cfg).PadBackground);
    }

    [Fact]
    public void DefaultsAreCLIPImageProcessorDefaults()
    {
        var cfg = ClipImageProcessorConfig.Parse("{}");
        Assert.Equal(224, cfg.SizeShortestEdge);
        Assert.Equal((224, 224), (cfg.CropHeight, cfg.CropWidth));
        Assert.Equal(ResampleFilter.Bicubic, cfg.Resample);
        Assert.Equal(ClipImageProcessorConfig.OpenAiClipMean, cfg.ImageMean);
        Assert.True(cfg.DoResize && cfg.DoCenterCrop && cfg.DoRescale && cfg.DoNormalize && cfg.DoConvertRgb);
    }

    [Fact]
    public void AlternativeSizeForms()
    {
        var a = ClipImageProcessorConfig.Parse("""{"size": 256, "crop_size": 240, "resample": 2}""");
        Assert.Equal(256, a.SizeShortestEdge);
        Assert.Equal((240, 240), (a.CropHeight, a.CropWidth));
        Assert.Equal(ResampleFilter.Bilinear, a.Resample);

        var b = ClipImageProcessorConfig.Parse("""{"size": {"height": 300, "width": 200}, "crop_size": {"height": 100, "width": 120}}""");
        Assert.Null(b.SizeShortestEdge);
        Assert.Equal((300, 200), (b.SizeHeight, b.SizeWidth));
        Assert.Equal((100, 120), (b.CropHeight, b.CropWidth));

        var c = ClipImageProcessorConfig.Parse("""{"size": {"shortest_edge": 336}, "use_square_size": true}""");
        Assert.Equal((336, 336), (c.SizeHeight, c.SizeWidth));

        Assert.Throws<InvalidDataException>(() => ClipImageProcessorConfig.Parse("""{"size": {"longest_edge": 3}}"""));
        Assert.Throws<InvalidDataException>(() => ClipImageProcessorConfig.Parse("""{"image_mean": [1, 2]}"""));
        Assert.Throws<InvalidDataException>(() => ClipImageProcessorConfig.Parse("not json"));
    }

    [Fact]
    public void NormalizationFollowsNumpyFloat32()
    {
        var p = new ClipImageProcessor(new ClipImageProcessorConfig { DoResize = false, DoCenterCrop = false });
        var img = new RgbImage(2, 1);
        img.SetPixel(0, 0, 0, 128, 255);
        img.SetPixel(1, 0, 7, 8, 9);
        var t = p.Preprocess(img, PreprocessMode.Default, out int h, out int w);
        Assert.Equal((1, 2), (h, w));
        // Channel-first layout; float32((float32(v * (1/255.0)) - float32(mean)) / float32(std)).
        float Expected(int v, int c) => ((float)(v * (1 / 255.0)) - (float)ClipImageProcessorConfig.OpenAiClipMean[c]) / (float)ClipImageProcessorConfig.OpenAiClipStd[c];
        Assert.Equal([Expected(0, 0), Expected(7, 0), Expected(128, 1), Expected(8, 1), Expected(255, 2), Expected(9, 2)], t);

        var raw = new ClipImageProcessor(new ClipImageProcessorConfig { DoResize = false, DoCenterCrop = false, DoRescale = false, DoNormalize = false });
        Assert.Equal([0f, 7f, 128f, 8f, 255f, 9f], raw.Preprocess(img));
    }
}
