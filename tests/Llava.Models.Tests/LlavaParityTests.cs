using Llava.Models.Llama;
using Llava.Models.Llava;

namespace Llava.Tests;

/// <summary>
/// The model against tensors computed by transformers 4.45 / LLaVA's own code in f32 (tests/fixtures/llava-tiny).
/// Tolerance: relative error ≤ 1e-4 (the bar). Our kernels sum in a different order than PyTorch, which
/// alone gives ~1e-6; anything near 1e-4 would mean a real bug.
/// </summary>
public sealed class LlavaParityTests(TinyModels models, ITestOutputHelper output) : IClassFixture<TinyModels>
{
    const double Tolerance = 1e-4;

    [Theory]
    [MemberData(nameof(ReferenceCase.ImageCaseIds), MemberType = typeof(ReferenceCase))]
    public void HfVisionFeaturesAndProjector_MatchReference(string id)
    {
        var c = ReferenceCase.Get(id);
        var pixels = c.Tensor("pixel_values");
        var selected = models.Hf.SelectVisionFeatures(pixels);
        double e1 = Numerics.RelativeError(selected, c.Tensor("vision_selected_features"));
        var features = models.Hf.Projector.Forward(selected, models.Hf.Config.NumImageTokens);
        double e2 = Numerics.RelativeError(features, c.Tensor("image_features"));
        output.WriteLine($"{id}: vision features rel err {e1:E2}, image features rel err {e2:E2}");
        Assert.InRange(e1, 0, Tolerance);
        Assert.InRange(e2, 0, Tolerance);
    }

    [Fact]
    public void VisionHiddenStates_EveryLayer_MatchReference()
    {
        var c = ReferenceCase.Get("extreme_ironing__default");
        var seen = new List<int>();
        models.Hf.SelectVisionFeatures(c.Tensor("pixel_values"), (i, h) =>
        {
            string name = $"debug.vision_hidden_states.{i}";
            if (!c.HasTensor(name)) return;
            Assert.InRange(Numerics.RelativeError(h, c.Tensor(name)), 0, Tolerance);
            seen.Add(i);
        });
        // Feature layer −2 of a 3-layer tower: hidden_states 0, 1 and 2 are computed and all are checked.
        Assert.Equal([0, 1, 2], seen);
    }

    [Theory]
    [MemberData(nameof(ReferenceCase.ImageCaseIds), MemberType = typeof(ReferenceCase))]
    public void OriginalLayout_VisionFeatures_EqualHfLayout(string id)
    {
        // Both layouts hold the same bf16 weights, so the projected features must agree to rounding.
        var c = ReferenceCase.Get(id);
        var pixels = c.Tensor("pixel_values");
        Assert.InRange(Numerics.RelativeError(models.Original.EncodeImage(pixels), c.Tensor("image_features")), 0, Tolerance);
    }

    [Fact]
    public void TextOnly_HfLogits_MatchReference()
    {
        var c = ReferenceCase.Get("text_only");
        var logits = Forward(models.Hf, c.InputIdsHf, 8);
        Assert.InRange(Numerics.RelativeError(logits, c.Tensor("logits_last")), 0, Tolerance);
    }

    [Fact]
    public void TextOnly_OriginalLogits_MatchLlavaCode()
    {
        var c = ReferenceCase.Get("text_only");
        var logits = Forward(models.Original, c.InputIdsOriginal!, 8);
        Assert.InRange(Numerics.RelativeError(logits, c.Tensor("original_code_logits_last")), 0, Tolerance);
    }

    [Fact]
    public void ShardedBinCheckpoint_GivesSameLogitsAsSafetensors()
    {
        var c = ReferenceCase.Get("text_only");
        var a = Forward(models.Original, c.InputIdsOriginal!, 8);
        var b = Forward(models.OriginalBin, c.InputIdsOriginal!, 8);
        // Same values in both files (the .bin mixes F16/F32 copies that are exact conversions of the bf16 values).
        Assert.Equal(a, b);
    }

    /// <summary>Plain decoder pass over text ids, returning logits of the last rows.</summary>
    internal static float[] Forward(LlavaModel model, int[] ids, int rows)
    {
        var lm = model.Language;
        int h = lm.Config.HiddenSize;
        var hidden = new float[ids.Length * h];
        lm.Embed(hidden, ids);
        var cache = new KvCache(lm.Config, ids.Length);
        lm.Forward(hidden, ids.Length, cache, new LlamaScratch(lm.Config, ids.Length));
        var logits = new float[rows * lm.VocabSize];
        lm.Logits(logits, hidden.AsSpan((ids.Length - rows) * h), rows);
        return logits;
    }
}
