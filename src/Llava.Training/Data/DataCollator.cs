namespace Llava.Training.Data;

/// <summary>
/// A collated batch, as LLaVA's <c>DataCollatorForSupervisedDataset</c> returns it. Row-major [B, T] arrays.
/// </summary>
public sealed class TrainingBatch
{
    public required int BatchSize { get; init; }
    /// <summary>T: the longest sample, capped at model_max_length.</summary>
    public required int SequenceLength { get; init; }
    /// <summary>[B, T] token ids, right-padded with the pad id; -200 marks the image.</summary>
    public required int[] InputIds { get; init; }
    /// <summary>[B, T] labels, right-padded with -100.</summary>
    public required int[] Labels { get; init; }
    /// <summary>[B, T] 1 where input_ids != pad id, else 0 (LLaVA's <c>input_ids.ne(pad_token_id)</c>).</summary>
    public required int[] AttentionMask { get; init; }
    /// <summary>[B, 3, H, W] pixel values (zeros for text-only samples), or null when the samples carry no images.</summary>
    public float[]? Images { get; init; }
    public int ImageHeight { get; init; }
    public int ImageWidth { get; init; }
    /// <summary>Per row: whether the sample has a real image (false = its image is the zero placeholder).</summary>
    public required bool[] HasImage { get; init; }
    /// <summary>Per row: the record id and the dataset index.</summary>
    public required string[] Ids { get; init; }
    public required int[] Indices { get; init; }

    public ReadOnlySpan<int> InputIdsRow(int b) => InputIds.AsSpan(b * SequenceLength, SequenceLength);
    public ReadOnlySpan<int> LabelsRow(int b) => Labels.AsSpan(b * SequenceLength, SequenceLength);
    public ReadOnlySpan<int> AttentionMaskRow(int b) => AttentionMask.AsSpan(b * SequenceLength, SequenceLength);
    public ReadOnlySpan<float> ImageRow(int b)
    {
        if (Images == null) throw new InvalidOperationException("The batch has no images.");
        int n = 3 * ImageHeight * ImageWidth;
        return Images.AsSpan(b * n, n);
    }

    /// <summary>Number of labels that are not -100 (LLaVA's loss averages over the shifted ones of these).</summary>
    public int SupervisedCount => Labels.Count(l => l != LlavaPreprocessor.IgnoreIndex);
}

/// <summary>
/// LLaVA's <c>DataCollatorForSupervisedDataset</c>: right-pads input_ids with the pad id and labels with -100
/// (<c>pad_sequence</c>), truncates both to model_max_length, attention_mask = input_ids != pad id, and stacks the
/// images (every sample's image has the processor's crop size, text-only ones included).
/// </summary>
public sealed class DataCollator
{
    public int PadTokenId { get; }
    public int ModelMaxLength { get; }

    public DataCollator(int padTokenId, int modelMaxLength)
    {
        if (modelMaxLength <= 0) throw new ArgumentOutOfRangeException(nameof(modelMaxLength));
        PadTokenId = padTokenId;
        ModelMaxLength = modelMaxLength;
    }

    /// <summary>The collator LLaVA would build for <paramref name="dataset"/> (same pad id and model_max_length).</summary>
    public static DataCollator For(LlavaDataset dataset) =>
        new(dataset.Preprocessor.PadTokenId, dataset.Options.ModelMaxLength);

    public TrainingBatch Collate(IReadOnlyList<TrainingSample> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (samples.Count == 0) throw new ArgumentException("Cannot collate an empty batch.", nameof(samples));
        int b = samples.Count;
        int longest = 0;
        foreach (var s in samples)
        {
            if (s.InputIds.Length != s.Labels.Length)
                throw new ArgumentException($"sample \"{s.Id}\": {s.InputIds.Length} input ids but {s.Labels.Length} labels");
            longest = Math.Max(longest, s.InputIds.Length);
        }
        int t = Math.Min(longest, ModelMaxLength);
        var ids = new int[b * t];
        var labels = new int[b * t];
        var mask = new int[b * t];
        Array.Fill(ids, PadTokenId);
        Array.Fill(labels, LlavaPreprocessor.IgnoreIndex);
        for (int r = 0; r < b; r++)
        {
            int n = Math.Min(samples[r].InputIds.Length, t);
            samples[r].InputIds.AsSpan(0, n).CopyTo(ids.AsSpan(r * t));
            samples[r].Labels.AsSpan(0, n).CopyTo(labels.AsSpan(r * t));
        }
        for (int i = 0; i < ids.Length; i++) mask[i] = ids[i] != PadTokenId ? 1 : 0;

        float[]? images = null;
        int h = 0, w = 0;
        if (samples[0].PixelValues != null)
        {
            h = samples[0].ImageHeight;
            w = samples[0].ImageWidth;
            int per = 3 * h * w;
            foreach (var s in samples)
                if (s.PixelValues == null || s.PixelValues.Length != per || s.ImageHeight != h || s.ImageWidth != w)
                    throw new ArgumentException($"sample \"{s.Id}\": image shape differs from the batch's [3, {h}, {w}] (LLaVA would pass a list; every image here comes from one processor, so this is a bug upstream)");
            images = new float[b * per];
            for (int r = 0; r < b; r++) samples[r].PixelValues.AsSpan().CopyTo(images.AsSpan(r * per));
        }

        return new TrainingBatch
        {
            BatchSize = b,
            SequenceLength = t,
            InputIds = ids,
            Labels = labels,
            AttentionMask = mask,
            Images = images,
            ImageHeight = h,
            ImageWidth = w,
            HasImage = samples.Select(s => s.HasImage).ToArray(),
            Ids = samples.Select(s => s.Id).ToArray(),
            Indices = samples.Select(s => s.Index).ToArray(),
        };
    }
}
