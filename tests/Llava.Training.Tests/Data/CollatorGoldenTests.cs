using Llava.Tests;
using Llava.Training.Data;

namespace Llava.Training.Tests.Data;

/// <summary>Collated batches and pixel values against the tensors LLaVA's collator produced (train/grads, reference/).</summary>
public class CollatorGoldenTests
{
    public static TheoryData<string> GradFiles()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Fixtures.TinyPath("train", "grads"), "*.safetensors").Order())
            data.Add(Path.GetFileNameWithoutExtension(f));
        return data;
    }

    /// <summary>"finetune__batch_ft-2_ft-3" → ("finetune", [ft-2, ft-3]); lora uses the finetune data.</summary>
    static (string Mode, string[] Ids) ParseCase(string name)
    {
        var parts = name.Split("__");
        string mode = parts[0] == "pretrain" ? "pretrain" : "finetune";
        var ids = parts[1].StartsWith("batch_", StringComparison.Ordinal)
            ? parts[1]["batch_".Length..].Split('_')
            : [parts[1]];
        return (mode, ids);
    }

    [Theory]
    [MemberData(nameof(GradFiles))]
    public void CollatedBatchMatchesLlava(string name)
    {
        var (mode, ids) = ParseCase(name);
        var ds = TrainFixtures.Load(mode);
        var samples = ids.Select(id => ds.GetSample(ds.Records.ToList().FindIndex(r => r.Id == id))).ToList();
        var batch = DataCollator.For(ds).Collate(samples);

        string path = Fixtures.TinyPath("train", "grads", name + ".safetensors");
        using var file = Llava.Formats.Safetensors.SafetensorsFile.Open(path);
        var shape = Llava.Formats.TensorFileExtensions.Get(file, "batch.input_ids").Shape;
        Assert.Equal([batch.BatchSize, batch.SequenceLength], shape.Select(s => (int)s).ToArray());
        Assert.Equal(TrainFixtures.ReadInt64(path, "batch.input_ids"), batch.InputIds.Select(x => (long)x).ToArray());
        Assert.Equal(TrainFixtures.ReadInt64(path, "batch.labels"), batch.Labels.Select(x => (long)x).ToArray());
        Assert.Equal(TrainFixtures.ReadInt64(path, "batch.attention_mask"), batch.AttentionMask.Select(x => (long)x).ToArray());
        Assert.Equal(ids, batch.Ids);
    }

    [Theory]
    [MemberData(nameof(TrainFixtures.MaskingCases), MemberType = typeof(TrainFixtures))]
    public void PixelValuesAreBitExact(string mode, string id)
    {
        var ds = TrainFixtures.Load(mode);
        var sample = ds.GetSample(ds.Records.ToList().FindIndex(r => r.Id == id));
        Assert.Equal(336, sample.ImageHeight);
        Assert.Equal(336, sample.ImageWidth);
        Assert.NotNull(sample.PixelValues);
        var record = sample.Record;
        if (!record.HasImage)
        {
            Assert.False(sample.HasImage);
            Assert.Equal(3 * 336 * 336, sample.PixelValues!.Length);
            Assert.All(sample.PixelValues, v => Assert.Equal(0u, BitConverter.SingleToUInt32Bits(v)));
            return;
        }
        Assert.True(sample.HasImage);
        string suffix = mode == "pretrain" ? "__default" : "__pad";
        string refPath = Fixtures.TinyPath("reference", Path.GetFileNameWithoutExtension(record.Image!) + suffix + ".safetensors");
        var (expected, shape) = TrainFixtures.ReadF32(refPath, "pixel_values");
        Assert.Equal(3 * 336 * 336, expected.Length);
        Assert.Equal(expected.Length, sample.PixelValues!.Length);
        int diffs = 0;
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToUInt32Bits(expected[i]) != BitConverter.SingleToUInt32Bits(sample.PixelValues[i])) diffs++;
        Assert.Equal(0, diffs);
    }

    [Fact]
    public void MixedBatchStacksAZeroImageAndFlagsIt()
    {
        var ds = TrainFixtures.Load("finetune");
        var batch = DataCollator.For(ds).Collate([ds.GetSample(2), ds.GetSample(3)]);
        Assert.Equal([true, false], batch.HasImage);
        Assert.NotNull(batch.Images);
        Assert.Equal(2 * 3 * 336 * 336, batch.Images!.Length);
        Assert.Equal(ds.GetSample(2).PixelValues, batch.ImageRow(0).ToArray());
        Assert.All(batch.ImageRow(1).ToArray(), v => Assert.Equal(0f, v));
        // Right padding: row 1 (53 tokens) padded with 0 / -100 / mask 0 up to 94.
        Assert.Equal(94, batch.SequenceLength);
        Assert.All(batch.InputIdsRow(1)[53..].ToArray(), v => Assert.Equal(0, v));
        Assert.All(batch.LabelsRow(1)[53..].ToArray(), v => Assert.Equal(-100, v));
        Assert.All(batch.AttentionMaskRow(1)[53..].ToArray(), v => Assert.Equal(0, v));
        Assert.All(batch.AttentionMaskRow(1)[..53].ToArray(), v => Assert.Equal(1, v));
    }

    [Fact]
    public void CollatorTruncatesToModelMaxLength()
    {
        var ds = TrainFixtures.Load("finetune");
        var full = ds.GetSample(2);
        var batch = new DataCollator(0, 40).Collate([full, ds.GetSample(3)]);
        Assert.Equal(40, batch.SequenceLength);
        Assert.Equal(full.InputIds[..40], batch.InputIdsRow(0).ToArray());
        Assert.Equal(full.Labels[..40], batch.LabelsRow(0).ToArray());
    }

    [Fact]
    public void TextOnlySampleIsTruncatedByTheTokenizerCall()
    {
        // LLaVA's text-only branch calls tokenizer(..., max_length=model_max_length, truncation=True).
        var ds = TrainFixtures.Load("finetune", TrainFixtures.FinetuneOptions with { ModelMaxLength = 30 });
        var sample = ds.GetSample(3);
        var full = TrainFixtures.Load("finetune").GetSample(3);
        Assert.Equal(full.InputIds[..30], sample.InputIds);
        // cur_len (53) >= model_max_length: no mismatch check, everything after the instruction is ignored.
        Assert.False(sample.TokenizationMismatch);
        Assert.All(sample.Labels, l => Assert.Equal(-100, l));
        // Image samples are not truncated before the collator, as in LLaVA.
        Assert.Equal(94, ds.GetSample(2).InputIds.Length);
    }
}
