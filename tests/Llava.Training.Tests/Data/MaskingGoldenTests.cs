using System.Text.Json;
using Llava.Tests;
using Llava.Training.Data;

namespace Llava.Training.Tests.Data;

/// <summary>input_ids / labels / prompts of every sample against LLaVA's own preprocessing (train/masking.json).</summary>
public class MaskingGoldenTests
{
    static TrainingSample Sample(string mode, string id, out LlavaDataset ds)
    {
        ds = TrainFixtures.Load(mode);
        var d = ds;
        int index = Enumerable.Range(0, ds.Count).Single(i => d.Records[i].Id == id);
        return ds.GetSample(index);
    }

    static JsonElement Reference(string mode, string id) =>
        TrainFixtures.MaskingSamples(mode).Single(s => s.GetProperty("id").GetString() == id);

    [Theory]
    [MemberData(nameof(TrainFixtures.MaskingCases), MemberType = typeof(TrainFixtures))]
    public void InputIdsAndLabelsMatchLlava(string mode, string id)
    {
        var reference = Reference(mode, id);
        var sample = Sample(mode, id, out var ds);
        Assert.Equal(reference.GetProperty("input_ids").Ints(), sample.InputIds);
        Assert.Equal(reference.GetProperty("labels").Ints(), sample.Labels);
        Assert.Equal(reference.GetProperty("num_supervised").GetInt32(), sample.Labels.Count(l => l != -100));
        Assert.Equal(reference.GetProperty("tokenization_mismatch").GetBoolean(), sample.TokenizationMismatch);
        Assert.Equal(0, ds.Report.TokenizationMismatches);
        Assert.Equal(reference.TryGetProperty("image", out var img) && img.ValueKind == JsonValueKind.String, sample.HasImage);
    }

    [Theory]
    [MemberData(nameof(TrainFixtures.MaskingCases), MemberType = typeof(TrainFixtures))]
    public void MultimodalRewriteAndPromptMatchLlava(string mode, string id)
    {
        var reference = Reference(mode, id);
        var ds = TrainFixtures.Load(mode);
        var record = ds.Records.Single(r => r.Id == id);
        var turns = record.HasImage ? ds.Preprocessor.PreprocessMultimodal(record.Conversations) : record.Conversations;
        var expected = reference.GetProperty("conversations_after_preprocess_multimodal").EnumerateArray()
            .Select(t => (t.GetProperty("from").GetString(), t.GetProperty("value").GetString())).ToArray();
        // preprocess_plain overwrites the first value with "<image>" in place; the reference captured that.
        var ours = turns.Select((t, i) => ((string?)t.From, (string?)(mode == "pretrain" && i == 0 ? "<image>" : t.Value))).ToArray();
        Assert.Equal(expected, ours);

        string prompt = reference.GetProperty("prompt").GetString()!;
        if (mode == "finetune") Assert.Equal(prompt, ds.Preprocessor.RenderPrompt(turns));
        else Assert.Equal(prompt, "<image>" + turns[1].Value + "\n");
    }

    [Fact]
    public void SupervisedTextDecodesToTheAnswers()
    {
        var ds = TrainFixtures.Load("finetune");
        foreach (var reference in TrainFixtures.MaskingSamples("finetune"))
        {
            var sample = ds.GetSample(ds.Records.ToList().FindIndex(r => r.Id == reference.GetProperty("id").GetString()));
            var supervised = sample.Labels.Where(l => l != -100).ToArray();
            Assert.Equal(reference.GetProperty("supervised_text").GetString(),
                TrainFixtures.Tokenizer.Decode(supervised, skipSpecialTokens: false));
        }
    }

    [Fact]
    public void ReportIsCleanForTheFixtureData()
    {
        foreach (var mode in new[] { "pretrain", "finetune" })
        {
            var ds = TrainFixtures.Load(mode);
            Assert.Equal(4, ds.Count);
            Assert.Equal(4, ds.Report.TotalRecords);
            Assert.Equal(0, ds.Report.Skipped);
            Assert.Equal(0, ds.ScanTokenization());
            Assert.Empty(ds.Report.Warnings);
        }
    }

    [Fact]
    public void LengthsAreLlavas()
    {
        var ds = TrainFixtures.Load("finetune");
        // sum(len(value.split())) (+128 with an image) / negated for text-only.
        var words = ds.Records.Select(r => r.Conversations.Sum(c => c.Value.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length)).ToArray();
        Assert.Equal(words.Select((w, i) => ds.Records[i].HasImage ? w + 128 : w), ds.Lengths);
        Assert.Equal(words.Select((w, i) => ds.Records[i].HasImage ? w : -w), ds.ModalityLengths);
        Assert.True(ds.ModalityLengths[3] < 0);
    }
}
