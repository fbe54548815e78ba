namespace Llava.Training.Data;

/// <summary>
/// The index orderings of LLaVA's <c>llava/train/llava_trainer.py</c> (<c>split_to_even_chunks</c>,
/// <c>get_length_grouped_indices</c>, <c>get_modality_length_grouped_indices</c>), step for step. The random
/// permutations come from <see cref="SeededRandom"/> instead of <c>torch.randperm</c>, so the orders differ from
/// PyTorch's for the same seed; the grouping logic is the same.
/// </summary>
public static class LengthGrouping
{
    /// <summary>
    /// <c>split_to_even_chunks</c>: if the count does not divide evenly, strided chunks <c>indices[i::n]</c>;
    /// otherwise greedily give each index to the chunk with the smallest total length (first on ties), closing a
    /// chunk when it is full.
    /// </summary>
    public static List<List<int>> SplitToEvenChunks(IReadOnlyList<int> indices, IReadOnlyList<int> lengths, int numChunks)
    {
        if (numChunks <= 0) throw new ArgumentOutOfRangeException(nameof(numChunks));
        var chunks = new List<List<int>>(numChunks);
        for (int c = 0; c < numChunks; c++) chunks.Add(new List<int>());
        if (indices.Count % numChunks != 0)
        {
            for (int i = 0; i < indices.Count; i++) chunks[i % numChunks].Add(indices[i]);
            return chunks;
        }
        int perChunk = indices.Count / numChunks;
        var chunkLengths = new double[numChunks];
        foreach (int index in indices)
        {
            int shortest = 0;
            for (int c = 1; c < numChunks; c++)
                if (chunkLengths[c] < chunkLengths[shortest]) shortest = c;
            chunks[shortest].Add(index);
            chunkLengths[shortest] += lengths[index];
            if (chunks[shortest].Count == perChunk) chunkLengths[shortest] = double.PositiveInfinity;
        }
        return chunks;
    }

    /// <summary>
    /// <c>get_length_grouped_indices</c>: a random permutation cut into megabatches of <c>world_size * batch_size</c>,
    /// each sorted by length (longest first, stable) and split into <paramref name="worldSize"/> even chunks.
    /// </summary>
    public static int[] GetLengthGroupedIndices(IReadOnlyList<int> lengths, int batchSize, int worldSize, SeededRandom rng) =>
        GetLengthGroupedIndices(lengths, batchSize, worldSize, rng.Permutation);

    /// <summary><see cref="GetLengthGroupedIndices(IReadOnlyList{int}, int, int, SeededRandom)"/> with the permutation source
    /// given (<c>randperm(n)</c>), e.g. to replay PyTorch's permutations.</summary>
    public static int[] GetLengthGroupedIndices(IReadOnlyList<int> lengths, int batchSize, int worldSize, Func<int, int[]> randperm)
    {
        CheckSizes(batchSize, worldSize);
        var indices = randperm(lengths.Count);
        int megabatchSize = worldSize * batchSize;
        var result = new List<int>(lengths.Count);
        for (int i = 0; i < indices.Length; i += megabatchSize)
        {
            var megabatch = indices.Skip(i).Take(megabatchSize).OrderByDescending(k => lengths[k]).ToList();
            foreach (var chunk in SplitToEvenChunks(megabatch, lengths, worldSize)) result.AddRange(chunk);
        }
        return result.ToArray();
    }

    /// <summary>
    /// <c>get_modality_length_grouped_indices</c>: lengths are positive for image samples and negative for text-only
    /// ones (<see cref="LlavaDataset.ModalityLengths"/>). Each modality is length-grouped on its own and cut into
    /// megabatches, the full megabatches of both are shuffled together, and the two incomplete last megabatches
    /// are merged into one final megabatch sorted by index. So every megabatch but the last is single-modality.
    /// </summary>
    public static int[] GetModalityLengthGroupedIndices(IReadOnlyList<int> lengths, int batchSize, int worldSize, SeededRandom rng) =>
        GetModalityLengthGroupedIndices(lengths, batchSize, worldSize, rng.Permutation);

    /// <summary><see cref="GetModalityLengthGroupedIndices(IReadOnlyList{int}, int, int, SeededRandom)"/> with the permutation
    /// source given (called for the image samples, the text samples, then the megabatches, in LLaVA's order).</summary>
    public static int[] GetModalityLengthGroupedIndices(IReadOnlyList<int> lengths, int batchSize, int worldSize, Func<int, int[]> randperm)
    {
        CheckSizes(batchSize, worldSize);
        if (lengths.Any(l => l == 0)) throw new ArgumentException("Should not have zero length.", nameof(lengths));
        if (lengths.All(l => l > 0) || lengths.All(l => l < 0))
            return GetLengthGroupedIndices(lengths, batchSize, worldSize, randperm);

        var mmIndices = new List<int>();
        var mmLengths = new List<int>();
        var langIndices = new List<int>();
        var langLengths = new List<int>();
        for (int i = 0; i < lengths.Count; i++)
        {
            if (lengths[i] > 0) { mmIndices.Add(i); mmLengths.Add(lengths[i]); }
            else { langIndices.Add(i); langLengths.Add(-lengths[i]); }
        }
        var mmShuffle = GetLengthGroupedIndices(mmLengths, batchSize, worldSize, randperm).Select(i => mmIndices[i]).ToList();
        var langShuffle = GetLengthGroupedIndices(langLengths, batchSize, worldSize, randperm).Select(i => langIndices[i]).ToList();
        int megabatchSize = worldSize * batchSize;
        var mmMegabatches = Chunk(mmShuffle, megabatchSize);
        var langMegabatches = Chunk(langShuffle, megabatchSize);

        var additional = mmMegabatches[^1].Concat(langMegabatches[^1]).ToList();
        var megabatches = mmMegabatches.Take(mmMegabatches.Count - 1).Concat(langMegabatches.Take(langMegabatches.Count - 1)).ToList();
        var order = randperm(megabatches.Count);
        var result = new List<int>(lengths.Count);
        foreach (int m in order) result.AddRange(megabatches[m]);
        if (additional.Count > 0)
        {
            additional.Sort();
            result.AddRange(additional);
        }
        return result.ToArray();
    }

    static List<List<int>> Chunk(List<int> items, int size)
    {
        var chunks = new List<List<int>>();
        for (int i = 0; i < items.Count; i += size) chunks.Add(items.GetRange(i, Math.Min(size, items.Count - i)));
        return chunks;
    }

    static void CheckSizes(int batchSize, int worldSize)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), "batch size must be positive");
        if (worldSize <= 0) throw new ArgumentOutOfRangeException(nameof(worldSize), "world size must be positive");
    }
}
