using Llava.Training.Data;

namespace Llava.Training.Tests.Data;

/// <summary>LLaVA's length-grouped / modality-grouped orderings (llava_trainer.py) and the seeded shuffle.</summary>
public class SamplerTests
{
    static int[] RandomModalityLengths(int n, int seed, double textFraction)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (rng.NextDouble() < textFraction ? -1 : 1) * rng.Next(1, 500)).ToArray();
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(1, 1)]
    [InlineData(17, 4)]
    [InlineData(1000, 8)]
    public void RandomSamplerIsAPermutationAndDeterministic(int n, ulong seed)
    {
        var s = new RandomSampler(n, seed);
        var e0 = s.GetIndices(0);
        Assert.Equal(Enumerable.Range(0, n), e0.Order());
        Assert.Equal(e0, new RandomSampler(n, seed).GetIndices(0));
        if (n > 10)
        {
            Assert.NotEqual(e0, s.GetIndices(1));
            Assert.NotEqual(e0, new RandomSampler(n, seed + 1).GetIndices(0));
        }
    }

    [Theory]
    [InlineData(1000, 4, 1, 0.3)]
    [InlineData(1003, 4, 2, 0.3)]
    [InlineData(257, 16, 1, 0.05)]
    [InlineData(100, 3, 4, 0.5)]
    [InlineData(50, 4, 1, 0.0)]
    [InlineData(50, 4, 1, 1.0)]
    public void ModalityGroupingVisitsEveryIndexOnceAndKeepsMegabatchesPure(int n, int batch, int world, double textFraction)
    {
        var lengths = RandomModalityLengths(n, n * 31 + batch, textFraction);
        var sampler = new LengthGroupedSampler(lengths, batch, world, seed: 42, groupByModality: true);
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var order = sampler.GetIndices(epoch);
            Assert.Equal(Enumerable.Range(0, n), order.Order());
            int mega = batch * world;
            bool mixed = lengths.Any(l => l > 0) && lengths.Any(l => l < 0);
            int nMm = lengths.Count(l => l > 0), nLang = n - nMm;
            // Full single-modality megabatches come first; only the final merged one may mix.
            int pure = mixed ? nMm / mega + nLang / mega - (nMm % mega == 0 ? 1 : 0) - (nLang % mega == 0 ? 1 : 0) : n / mega;
            for (int m = 0; m < pure; m++)
            {
                var mb = order.Skip(m * mega).Take(mega).ToArray();
                Assert.Equal(mega, mb.Length);
                Assert.True(mb.All(i => lengths[i] > 0) || mb.All(i => lengths[i] < 0), $"megabatch {m} mixes modalities");
            }
            if (mixed)
            {
                var tail = order.Skip(pure * mega).ToArray();
                Assert.Equal(tail.Order(), tail); // sorted(additional_batch)
            }
        }
        Assert.Equal(sampler.GetIndices(1), new LengthGroupedSampler(lengths, batch, world, 42).GetIndices(1));
        Assert.NotEqual(sampler.GetIndices(0), new LengthGroupedSampler(lengths, batch, world, 43).GetIndices(0));
    }

    [Fact]
    public void WithinAMegabatchLongestComeFirstSplitAcrossRanks()
    {
        var lengths = RandomModalityLengths(96, 5, 0).ToArray(); // all image
        var order = LengthGrouping.GetLengthGroupedIndices(lengths, 4, 1, new SeededRandom(3));
        Assert.Equal(Enumerable.Range(0, 96), order.Order());
        for (int m = 0; m < 96; m += 4)
        {
            var mb = order.Skip(m).Take(4).Select(i => lengths[i]).ToArray();
            Assert.Equal(mb.OrderDescending(), mb);
        }
    }

    [Fact]
    public void SplitToEvenChunksMatchesLlava()
    {
        // Values from running LLaVA's split_to_even_chunks in Python.
        int[] lengths = [5, 1, 9, 3, 7, 2, 8, 4];
        Assert.Equal([[2, 0, 7, 5], [6, 4, 3, 1]],
            LengthGrouping.SplitToEvenChunks([2, 6, 4, 0, 7, 3, 5, 1], lengths, 2));
        Assert.Equal([[0, 3, 6], [1, 4, 7], [2, 5]],
            LengthGrouping.SplitToEvenChunks([0, 1, 2, 3, 4, 5, 6, 7], lengths, 3));
        Assert.Equal([[2, 6, 4, 0, 7, 3, 5, 1]],
            LengthGrouping.SplitToEvenChunks([2, 6, 4, 0, 7, 3, 5, 1], lengths, 1));
    }

    [Fact]
    public void ModalityGroupingOfTheFixtureData()
    {
        var ds = TrainFixtures.Load("finetune");
        var sampler = new LengthGroupedSampler(ds.ModalityLengths, batchSize: 2, worldSize: 1, seed: 0);
        var order = sampler.GetIndices(0);
        // 3 image samples, 1 text: one full image megabatch, then the merged tail sorted: [leftover image, text 3].
        Assert.Equal(Enumerable.Range(0, 4), order.Order());
        Assert.Equal(3, order[^1]);
        Assert.True(order[2] < 3);
        var loader = new LlavaDataLoader(ds, sampler, 2);
        var batches = loader.GetBatches(0).ToList();
        Assert.Equal(2, batches.Count);
        Assert.All(batches[0].HasImage, Assert.True);
        Assert.Equal([true, false], batches[1].HasImage);
    }

    [Fact]
    public void ZeroLengthIsRejectedLikeLlavasAssert()
    {
        Assert.Throws<ArgumentException>(() => new LengthGroupedSampler([3, 0, -2], 2, 1, 0));
    }

    /// <summary>A deterministic stand-in for torch.randperm used on both sides: reversed range rotated by n/3.</summary>
    static int[] FakeRandperm(int n)
    {
        var p = Enumerable.Range(0, n).Reverse().ToArray();
        int k = n / 3;
        return [.. p[k..], .. p[..k]];
    }

    [Fact]
    public void GroupingLogicMatchesLlavaStepForStep()
    {
        // Expected values from LLaVA's llava_trainer.py functions run in Python with the same stand-in randperm.
        int[] lengths = [10, 42, -5, -24, -59, -3, -28, 5, -6, 4, -15, -37, 4, -3, -19, 10, -37, 36, -7, -24, -36, -37, -40, -32, 50, 30, 24, 16, -45, -6, 34, 57, 47, 19, -8, 11, 10];
        Assert.Equal([4, 10, 5, 11, 6, 8, 16, 14, 18, 20, 19, 13, 1, 12, 9, 15, 0, 7, 24, 25, 27, 17, 30, 26, 28, 34, 29, 23, 3, 2, 21, 22, 31, 32, 33, 35, 36],
            LengthGrouping.GetModalityLengthGroupedIndices(lengths, 3, 2, FakeRandperm));
        var abs = lengths.Select(Math.Abs).ToArray();
        Assert.Equal([24, 23, 22, 21, 20, 19, 17, 18, 16, 13, 14, 15, 11, 9, 10, 12, 6, 5, 8, 7, 4, 2, 1, 3, 35, 34, 0, 36, 31, 33, 32, 30, 28, 29, 26, 27, 25],
            LengthGrouping.GetModalityLengthGroupedIndices(abs, 2, 2, FakeRandperm));
        Assert.Equal([24, 17, 14, 18, 22, 20, 19, 15, 21, 16, 23, 13, 4, 10, 9, 5, 1, 3, 7, 2, 11, 6, 8, 12, 31, 33, 35, 36, 32, 26, 27, 34, 28, 30, 0, 29, 25],
            LengthGrouping.GetLengthGroupedIndices(abs, 4, 3, FakeRandperm));
    }

    [Fact]
    public void SeededRandomIsStable()
    {
        // Pinned so a change of generator (which would silently change every run's order) is noticed.
        Assert.Equal([5, 3, 2, 7, 10, 6, 11, 4, 0, 9, 1, 8], new SeededRandom(12345).Permutation(12));
        Assert.Equal(new SeededRandom(12345).Permutation(20), new SeededRandom(12345).Permutation(20));
        var counts = new int[5];
        var g = new SeededRandom(1);
        for (int i = 0; i < 50000; i++) counts[g.NextInt(5)]++;
        Assert.All(counts, c => Assert.InRange(c, 9500, 10500));
    }
}
