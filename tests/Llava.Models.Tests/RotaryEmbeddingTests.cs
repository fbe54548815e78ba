using Llava.Models.Llama;

namespace Llava.Tests;

/// <summary>RoPE tables and every supported rope_scaling, against the formulas of transformers' rope utils.</summary>
public sealed class RotaryEmbeddingTests
{
    static LlamaConfig Config(RopeScaling? scaling, int headDim = 128, double theta = 10000, int maxPos = 2048) =>
        new() { HiddenSize = headDim * 2, NumHeads = 2, NumKvHeads = 2, HeadDim = headDim, RopeTheta = theta, RopeScaling = scaling, MaxPositionEmbeddings = maxPos };

    static (float[] Cos, float[] Sin) Table(LlamaConfig c, int position, int sequenceLength = 1)
    {
        var cos = new float[c.HeadDim / 2];
        var sin = new float[c.HeadDim / 2];
        new RotaryEmbedding(c).Compute(cos, sin, position, 1, sequenceLength);
        return (cos, sin);
    }

    [Fact]
    public void Default_AnglesArePositionTimesInverseFrequency()
    {
        var c = Config(null);
        var (cos, sin) = Table(c, 7);
        for (int i = 0; i < 64; i++)
        {
            double angle = 7 * (1 / Math.Pow(10000, 2.0 * i / 128));
            Assert.Equal(Math.Cos(angle), cos[i], 5);
            Assert.Equal(Math.Sin(angle), sin[i], 5);
        }
    }

    [Fact]
    public void Linear_DividesPositions()
    {
        var scaled = Table(Config(new RopeScaling("linear", 4)), 40);
        var plain = Table(Config(null), 10);
        Assert.Equal(plain.Cos, scaled.Cos);
        Assert.Equal(plain.Sin, scaled.Sin);
    }

    [Fact]
    public void Dynamic_ChangesNothingWithinTheTrainedLength_AndGrowsTheBaseBeyond()
    {
        var dyn = Config(new RopeScaling("dynamic", 2), maxPos: 100);
        var plain = Config(null, maxPos: 100);
        Assert.Equal(Table(plain, 50, 100).Cos, Table(dyn, 50, 100).Cos);
        // Beyond: base' = base · (factor·len/max − (factor−1))^(d/(d−2)).
        var (cos, _) = Table(dyn, 150, 200);
        double b = 10000 * Math.Pow(2.0 * 200 / 100 - 1, 128.0 / 126);
        for (int i = 0; i < 64; i += 9)
            Assert.Equal(Math.Cos(150 / Math.Pow(b, 2.0 * i / 128)), cos[i], 4);
    }

    [Fact]
    public void Llama3_KeepsHighFrequencies_DividesLowOnes_SmoothsBetween()
    {
        var s = new RopeScaling("llama3", 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192);
        var scaled = Table(Config(s, theta: 500000), 1);
        var plain = Table(Config(null, theta: 500000), 1);
        // Position 1: the angle is the inverse frequency itself.
        double inv0 = 1.0, invLast = 1 / Math.Pow(500000, 126.0 / 128);
        Assert.Equal(Math.Sin(inv0), scaled.Sin[0], 5);                 // wavelength 2π < 8192/4: unchanged
        Assert.Equal(Math.Sin(invLast / 8), scaled.Sin[63], 8);         // wavelength > 8192: divided by the factor
        Assert.Equal(plain.Sin[0], scaled.Sin[0]);
        int medium = Enumerable.Range(0, 64).First(i => 2 * Math.PI * Math.Pow(500000, 2.0 * i / 128) > 8192 / 4.0);
        double inv = 1 / Math.Pow(500000, 2.0 * medium / 128);
        double smooth = (8192 / (2 * Math.PI / inv) - 1) / (4 - 1);
        Assert.Equal(Math.Sin((1 - smooth) * inv / 8 + smooth * inv), scaled.Sin[medium], 6);
    }

    [Fact]
    public void UnknownScaling_IsAClearError()
    {
        var json = System.Text.Json.JsonDocument.Parse("{\"rope_scaling\":{\"rope_type\":\"longrope\",\"factor\":2}}").RootElement;
        var e = Assert.Throws<Llava.Formats.ModelFormatException>(() => RopeScaling.FromJson(json));
        Assert.Contains("longrope", e.Message);
    }
}
