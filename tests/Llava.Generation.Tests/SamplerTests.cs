using Llava.Generation;

namespace Llava.Tests;

public sealed class SamplerTests
{
    [Fact]
    public void Greedy_PicksFirstMaximum()
    {
        var s = new Sampler(new GenerationOptions { Temperature = 0 }, 5);
        Assert.Equal(2, s.Sample([0f, 1f, 3f, 3f, -1f], []));
    }

    [Fact]
    public void RepetitionPenalty_DividesPositiveAndMultipliesNegative_OncePerId()
    {
        var s = new Sampler(new GenerationOptions { Temperature = 0, RepetitionPenalty = 2f }, 3);
        float[] logits = [4f, 3f, -1f];
        // id 0 appears twice: penalized once (4 → 2), so id 1 (3) wins.
        Assert.Equal(1, s.Sample(logits, [0, 0, 2]));
        Assert.Equal(2f, logits[0]);
        Assert.Equal(-2f, logits[2]);
    }

    [Fact]
    public void TopK1_IsGreedyEvenWhenSampling()
    {
        var s = new Sampler(new GenerationOptions { Temperature = 1.5f, TopK = 1, Seed = 3 }, 4);
        for (int i = 0; i < 20; i++) Assert.Equal(3, s.Sample([0f, 1f, 2f, 2.5f], []));
    }

    [Fact]
    public void TopP_KeepsOnlyTheNucleus()
    {
        // probabilities ≈ [0.64, 0.24, 0.09, 0.03]: top_p 0.8 keeps ids 0 and 1 only.
        var s = new Sampler(new GenerationOptions { Temperature = 1f, TopP = 0.8f, Seed = 7 }, 4);
        var seen = new HashSet<int>();
        for (int i = 0; i < 500; i++) seen.Add(s.Sample([3f, 2f, 1f, 0f], []));
        Assert.Equal([0, 1], seen.Order());
    }

    [Fact]
    public void Seed_MakesSamplingReproducible()
    {
        float[] logits = [1f, 1.1f, 0.9f, 1.05f, 0.7f];
        int[] Run() { var s = new Sampler(new GenerationOptions { Temperature = 1f, Seed = 42 }, 5); return Enumerable.Range(0, 50).Select(_ => s.Sample(logits.ToArray(), [])).ToArray(); }
        var a = Run();
        Assert.Equal(a, Run());
        Assert.True(a.Distinct().Count() > 2, "sampling at temperature 1 should visit several tokens");
    }

    [Fact]
    public void Temperature_SharpensTowardTheMaximum()
    {
        int Count(float temp) { var s = new Sampler(new GenerationOptions { Temperature = temp, Seed = 1 }, 2); return Enumerable.Range(0, 2000).Count(_ => s.Sample([1f, 0f], []) == 0); }
        // P(0) = σ(1/T): 0.73 at T=1, 0.9997 at T=0.125.
        Assert.InRange(Count(1f), 1300, 1620);
        Assert.True(Count(0.125f) > 1990);
    }
}

public sealed class StopStringFilterTests
{
    [Fact]
    public void HoldsBackPossibleStopPrefix_AndCutsAtStop()
    {
        var f = new StopStringFilter(["###"]);
        Assert.Equal("Hello", f.Push("Hello", out bool s1));
        Assert.False(s1);
        Assert.Equal(" wor", f.Push(" wor#", out _));
        Assert.Equal("#ld", f.Push("ld", out bool s2));
        Assert.False(s2);
        Assert.Equal("!", f.Push("!###more", out bool s3));
        Assert.True(s3);
    }

    [Fact]
    public void StopSplitAcrossPieces_IsRemoved()
    {
        var f = new StopStringFilter(["</s>"]);
        var a = f.Push("The answer.<", out bool s1);
        var b = f.Push("/s", out bool s2);
        var c = f.Push(">tail", out bool s3);
        Assert.Equal("The answer.", a + b + c);
        Assert.False(s1);
        Assert.False(s2);
        Assert.True(s3);
    }

    [Fact]
    public void FalseAlarm_IsReleased()
    {
        var f = new StopStringFilter(["###"]);
        Assert.Equal("a", f.Push("a#", out _));
        Assert.Equal("#b", f.Push("b", out _));
        Assert.Equal("", f.Flush());
    }
}
