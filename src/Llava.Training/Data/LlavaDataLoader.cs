namespace Llava.Training.Data;

/// <summary>
/// Batches of a <see cref="LlavaDataset"/> in a sampler's order, collated by <see cref="DataCollator"/>. A sample
/// whose image fails to decode is skipped (the dataset reports it once) and the batch is filled from the next
/// indices, so one bad file never stops a run. Samples of a batch are prepared in parallel.
/// </summary>
public sealed class LlavaDataLoader
{
    public LlavaDataset Dataset { get; }
    public ITrainingSampler Sampler { get; }
    public int BatchSize { get; }
    public DataCollator Collator { get; }
    /// <summary>Drop a last incomplete batch (HF <c>dataloader_drop_last</c>, default false).</summary>
    public bool DropLast { get; }
    public int MaxDegreeOfParallelism { get; }

    public LlavaDataLoader(LlavaDataset dataset, ITrainingSampler sampler, int batchSize, DataCollator? collator = null,
        bool dropLast = false, int maxDegreeOfParallelism = -1)
    {
        Dataset = dataset ?? throw new ArgumentNullException(nameof(dataset));
        Sampler = sampler ?? throw new ArgumentNullException(nameof(sampler));
        if (sampler.Count != dataset.Count) throw new ArgumentException($"sampler covers {sampler.Count} indices, dataset has {dataset.Count}", nameof(sampler));
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize));
        BatchSize = batchSize;
        Collator = collator ?? DataCollator.For(dataset);
        DropLast = dropLast;
        MaxDegreeOfParallelism = maxDegreeOfParallelism;
    }

    /// <summary>Number of batches in an epoch if no sample fails.</summary>
    public int BatchesPerEpoch => DropLast ? Dataset.Count / BatchSize : (Dataset.Count + BatchSize - 1) / BatchSize;

    /// <summary>The batches of epoch <paramref name="epoch"/>.</summary>
    public IEnumerable<TrainingBatch> GetBatches(int epoch)
    {
        var order = Sampler.GetIndices(epoch);
        int next = 0;
        while (next < order.Length)
        {
            var batch = new List<TrainingSample>(BatchSize);
            while (batch.Count < BatchSize && next < order.Length)
            {
                int take = Math.Min(BatchSize - batch.Count, order.Length - next);
                var slots = new TrainingSample?[take];
                Parallel.For(0, take, new ParallelOptions { MaxDegreeOfParallelism = MaxDegreeOfParallelism }, k =>
                {
                    if (Dataset.TryGetSample(order[next + k], out var s)) slots[k] = s;
                });
                next += take;
                foreach (var s in slots)
                    if (s != null) batch.Add(s);
            }
            if (batch.Count == 0 || (DropLast && batch.Count < BatchSize)) yield break;
            yield return Collator.Collate(batch);
        }
    }
}
