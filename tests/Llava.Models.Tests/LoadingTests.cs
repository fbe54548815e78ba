using Llava.Formats;
using Llava.Models.Llava;

namespace Llava.Tests;

/// <summary>Checkpoint layouts, projector-only loading and the errors a user sees for bad inputs.</summary>
public sealed class LoadingTests
{
    [Fact]
    public void HfConfig_IsReadFromNestedConfigs()
    {
        var c = LlavaConfig.Load(Fixtures.TinyPath("hf"));
        Assert.Equal(CheckpointLayout.HuggingFace, c.Layout);
        Assert.Equal(32000, c.ImageTokenIndex);
        Assert.Equal(576, c.NumImageTokens);
        Assert.Equal(64, c.Vision.HiddenSize);
        Assert.Equal(3, c.Vision.NumLayers);
        Assert.Equal(336, c.Vision.ImageSize);
        Assert.Equal(16, c.Text.HeadDim);
        Assert.Equal(32064, c.Text.VocabSize);
        Assert.Equal(2, c.ProjectorDepth);
    }

    [Fact]
    public void OriginalConfig_ResolvesTowerAndMmKeys()
    {
        var c = LlavaConfig.Load(Fixtures.TinyPath("original", "llava-v1.5-tiny"));
        Assert.Equal(CheckpointLayout.Original, c.Layout);
        Assert.Equal(-200, c.ImageTokenIndex);
        Assert.Equal(ImageAspectMode.Pad, c.ImageAspect);
        Assert.Equal("mlp2x_gelu", c.ProjectorType);
        Assert.False(c.MmUseImStartEnd);
        Assert.EndsWith("clip-vit-tiny-patch14-336", c.VisionTowerPath);
        Assert.Equal(2048, c.ContextLength);
    }

    [Theory]
    [InlineData("linear", 1)]
    [InlineData("mlp2x_gelu", 2)]
    [InlineData("mlp3x_gelu", 3)]
    [InlineData("identity", 0)]
    public void ProjectorTypes_HaveDepth(string type, int depth)
    {
        var c = LlavaConfig.Load(Fixtures.TinyPath("hf")) with { ProjectorType = type };
        Assert.Equal(depth, c.ProjectorDepth);
    }

    [Fact]
    public void UnknownProjectorType_IsAClearError()
    {
        var c = LlavaConfig.Load(Fixtures.TinyPath("hf")) with { ProjectorType = "resampler" };
        var e = Assert.Throws<ModelFormatException>(() => c.ProjectorDepth);
        Assert.Contains("resampler", e.Message);
    }

    [Fact]
    public void MissingVisionTower_IsAClearError()
    {
        // The .bin copy's config names a tower that is not next to it.
        var e = Assert.Throws<ModelFormatException>(() => LlavaModel.Load(Fixtures.TinyPath("original-bin", "llava-v1.5-tiny")));
        Assert.Contains("--vision-tower", e.Message);
        Assert.Contains("clip-vit-tiny-patch14-336", e.Message);
    }

    [Fact]
    public void ProjectorOnlyCheckpoint_WithModelBase_MatchesFullCheckpoint()
    {
        using var dir = new TempDir();
        File.Copy(Fixtures.TinyPath("original", "llava-v1.5-tiny", "config.json"), Path.Combine(dir.Path, "config.json"));
        File.Copy(Fixtures.TinyPath("original-bin", "mm_projector.bin"), Path.Combine(dir.Path, "mm_projector.bin"));
        var options = new LlavaLoadOptions
        {
            ModelBase = Fixtures.TinyPath("original", "llava-v1.5-tiny"),
            VisionTower = Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336"),
        };
        using var projectorOnly = LlavaModel.Load(dir.Path, options);
        using var full = LlavaModel.Load(Fixtures.TinyPath("original", "llava-v1.5-tiny"));
        var pixels = ReferenceCase.Get("tiny_37x61__pad").Tensor("pixel_values");
        Assert.Equal(full.EncodeImage(pixels), projectorOnly.EncodeImage(pixels));
    }

    [Fact]
    public void ProjectorOnlyCheckpoint_WithoutModelBase_SaysWhatToPass()
    {
        using var dir = new TempDir();
        File.Copy(Fixtures.TinyPath("original", "llava-v1.5-tiny", "config.json"), Path.Combine(dir.Path, "config.json"));
        File.Copy(Fixtures.TinyPath("original-bin", "mm_projector.bin"), Path.Combine(dir.Path, "mm_projector.bin"));
        var e = Assert.Throws<ModelFormatException>(() => LlavaModel.Load(dir.Path, new LlavaLoadOptions { VisionTower = Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336") }));
        Assert.Contains("--model-base", e.Message);
    }

    [Fact]
    public void TruncatedSafetensors_IsAClearError()
    {
        using var dir = new TempDir();
        foreach (var f in Directory.GetFiles(Fixtures.TinyPath("hf")))
            File.Copy(f, Path.Combine(dir.Path, Path.GetFileName(f)));
        var weights = Path.Combine(dir.Path, "model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, bytes.AsSpan(0, bytes.Length / 2).ToArray());
        var e = Assert.Throws<ModelFormatException>(() => LlavaModel.Load(dir.Path));
        Assert.Contains("past the end", e.Message);
    }

    [Fact]
    public void MissingAndMisshapenTensors_AreAllReportedAtOnce()
    {
        using var dir = new TempDir();
        foreach (var f in Directory.GetFiles(Fixtures.TinyPath("hf")))
            File.Copy(f, Path.Combine(dir.Path, Path.GetFileName(f)));
        // Rewrite the weights without two tensors.
        using (var src = Llava.Formats.Safetensors.SafetensorsFile.Open(Fixtures.TinyPath("hf", "model.safetensors")))
        {
            var keep = src.Names.Where(n => n != "language_model.model.norm.weight" && n != "multi_modal_projector.linear_2.bias")
                .Select(n => src.Get(n)).Select(t => new Llava.Formats.Safetensors.SafetensorsWriter.Entry(t.Name, t.DType, t.Shape, t.Bytes.ToArray())).ToList();
            Llava.Formats.Safetensors.SafetensorsWriter.Write(Path.Combine(dir.Path, "model.safetensors"), keep);
        }
        var e = Assert.Throws<ModelFormatException>(() => LlavaModel.Load(dir.Path));
        Assert.Contains("language_model.model.norm.weight", e.Message);
        Assert.Contains("multi_modal_projector.linear_2.bias", e.Message);
    }
}

