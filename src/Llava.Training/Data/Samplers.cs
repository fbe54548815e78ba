namespace Llava.Training.Data;

/// <summary>The order in which one epoch visits the dataset (a torch <c>Sampler</c>).</summary>
public interface ITrainingSampler
{
    /// <summary>Number of indices per epoch.</summary>
    int Count { get; }
    /// <summary>The indices of epoch <paramref name="epoch"/> (0-based), each exactly once. Deterministic per (seed, epoch).</summary>
    int[] GetIndices(int epoch);
}

/// <summary>0, 1, 2, ... every epoch (no shuffling).</summary>
public sealed class SequentialSampler(int count) : ITrainingSampler
{
    public int Count { get; } = count >= 0 ? count : throw new ArgumentOutOfRangeException(nameof(count));
    public int[] GetIndices(int epoch) => Enumerable.Range(0, Count).ToArray();
}

/// <summary>A fresh seeded shuffle per epoch (the Trainer's <c>RandomSampler</c> role when no grouping is asked for).</summary>
public sealed class RandomSampler(int count, ulong seed) : ITrainingSampler
{
    public int Count { get; } = count >= 0 ? count : throw new ArgumentOutOfRangeException(nameof(count));
    public ulong Seed { get; } = seed;
    public int[] GetIndices(int epoch) => SeededRandom.For(Seed, epoch).Permutation(Count);
}

/// <summary>
/// LLaVA's <c>LengthGroupedSampler</c>. With <c>group_by_modality_length</c> LLaVA builds it from
/// <see cref="LlavaDataset.ModalityLengths"/>, <c>batch_size = per-device train batch size</c> and
/// <c>world_size = world_size * gradient_accumulation_steps</c>, with <paramref name="groupByModality"/> true.
/// </summary>
public sealed class LengthGroupedSampler : ITrainingSampler
{
    readonly int[] lengths;

    public int BatchSize { get; }
    public int WorldSize { get; }
    public ulong Seed { get; }
    public bool GroupByModality { get; }
    public int Count => lengths.Length;

    public LengthGroupedSampler(IReadOnlyList<int> lengths, int batchSize, int worldSize, ulong seed, bool groupByModality = true)
    {
        ArgumentNullException.ThrowIfNull(lengths);
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize));
        if (worldSize <= 0) throw new ArgumentOutOfRangeException(nameof(worldSize));
        if (groupByModality && lengths.Any(l => l == 0)) throw new ArgumentException("Should not have zero length.", nameof(lengths));
        this.lengths = lengths.ToArray();
        BatchSize = batchSize;
        WorldSize = worldSize;
        Seed = seed;
        GroupByModality = groupByModality;
    }

    public int[] GetIndices(int epoch)
    {
        var rng = SeededRandom.For(Seed, epoch);
        return GroupByModality
            ? LengthGrouping.GetModalityLengthGroupedIndices(lengths, BatchSize, WorldSize, rng)
            : LengthGrouping.GetLengthGroupedIndices(lengths, BatchSize, WorldSize, rng);
    }
}
