using System.Text.Json.Nodes;
using Llava.Tests;
using Llava.Text;
using Llava.Training.Data;

namespace Llava.Training.Tests.Data;

/// <summary>LLaVA silently ignores every label of a mismatched sample; we do the same but count and report it.</summary>
public class MismatchTests
{
    [Fact]
    public void OldTokenizersRuleMismatchesOnTheTwoRoundSampleAndIsCounted()
    {
        // masking.json -> diagnostic_if_IS_TOKENIZER_GREATER_THAN_0_14_were_False: ft-2 mismatches, "95 vs. 94".
        var diagnostic = TrainFixtures.Masking.GetProperty("diagnostic_if_IS_TOKENIZER_GREATER_THAN_0_14_were_False")
            .EnumerateArray().ToDictionary(e => e.GetProperty("id").GetString()!, e => e);
        var warnings = new List<DataWarning>();
        var ds = LlavaDataset.Load(TrainFixtures.DataPath("finetune"), TrainFixtures.Tokenizer, TrainFixtures.Processor,
            TrainFixtures.FinetuneOptions with { TokenizersAtLeast014 = false }, warnings.Add);
        var reference = TrainFixtures.MaskingSamples("finetune").ToDictionary(e => e.GetProperty("id").GetString()!, e => e);

        for (int i = 0; i < ds.Count; i++)
        {
            var s = ds.GetSample(i);
            var d = diagnostic[s.Id];
            Assert.Equal(d.GetProperty("tokenization_mismatch").GetBoolean(), s.TokenizationMismatch);
            Assert.Equal(reference[s.Id].GetProperty("input_ids").Ints(), s.InputIds);
            if (s.TokenizationMismatch)
            {
                Assert.All(s.Labels, l => Assert.Equal(-100, l));
                Assert.Contains("tokenization mismatch: 95 vs. 94.", d.GetProperty("llava_stdout").GetString());
            }
            else Assert.Equal(reference[s.Id].GetProperty("labels").Ints(), s.Labels);
        }
        Assert.Equal(1, ds.Report.TokenizationMismatches);
        Assert.Equal(0, ds.Report.Skipped); // kept (as LLaVA), but never silent
        var w = Assert.Single(warnings);
        Assert.Equal("ft-2", w.Id);
        Assert.Equal(DataIssue.TokenizationMismatch, w.Issue);
        Assert.Contains("tokenization mismatch: 95 vs. 94.", w.Message);

        // Reading the sample again (another epoch) does not count it twice; the up-front scan agrees.
        ds.GetSample(2);
        Assert.Equal(1, ds.ScanTokenization());
        Assert.Equal(1, ds.Report.TokenizationMismatches);
        Assert.Contains("1 tokenization mismatches", ds.Report.ToString());
    }

    [Fact]
    public void ConversationEndingWithAQuestionMismatches()
    {
        // A trailing human turn has no answer round: LLaVA's cur_len stops short of the tokenized length.
        var pre = new LlavaPreprocessor(TrainFixtures.Tokenizer, TrainFixtures.FinetuneOptions);
        var t = pre.Preprocess([new("human", "Hi there"), new("gpt", "Hello."), new("human", "And now?")], hasImage: false);
        Assert.True(t.TokenizationMismatch);
        Assert.All(t.Labels, l => Assert.Equal(-100, l));
        Assert.StartsWith("tokenization mismatch:", t.MismatchMessage);
    }

    [Fact]
    public void MismatchIsReportedThroughTheLoader()
    {
        var ds = LlavaDataset.Load(TrainFixtures.DataPath("finetune"), TrainFixtures.Tokenizer, TrainFixtures.Processor,
            TrainFixtures.FinetuneOptions with { TokenizersAtLeast014 = false });
        var loader = new LlavaDataLoader(ds, new RandomSampler(ds.Count, 7), batchSize: 2);
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var batches = loader.GetBatches(epoch).ToList();
            Assert.Equal(4, batches.Sum(b => b.BatchSize));
        }
        Assert.Equal(1, ds.Report.TokenizationMismatches);
    }
}

/// <summary>preprocess_multimodal and the template dispatch.</summary>
public class PreprocessorTests
{
    static IReadOnlyList<ConversationTurn> Mm(string value, bool startEnd = false, string version = "v1") =>
        LlavaPreprocessor.PreprocessMultimodal([new("human", value), new("gpt", "x <image> y")], true, startEnd, version);

    [Theory]
    [InlineData("What color is the top-left corner?\n<image>", "<image>\nWhat color is the top-left corner?")]
    [InlineData("<image>\n", "<image>")]
    [InlineData("  a <image> b <image>  ", "<image>\na  b")]
    [InlineData("no image here", "no image here")]
    public void ImageMovesToTheFrontOfItsTurn(string input, string expected) => Assert.Equal(expected, Mm(input)[0].Value);

    [Fact]
    public void EveryTurnWithAnImageIsRewritten()
    {
        // LLaVA rewrites each turn that contains the token (the dataset rejects more than one placeholder per record).
        Assert.Equal("<image>\nx  y", Mm("q")[1].Value);
    }

    [Fact]
    public void MmtagAndStartEndVariants()
    {
        Assert.Equal("<Image><image></Image>\nQ?", Mm("Q?<image>", version: "v1_mmtag")[0].Value);
        Assert.Equal("<im_start><image><im_end>\nQ?", Mm("Q? <image>", startEnd: true)[0].Value);
        Assert.Equal("Q?", LlavaPreprocessor.PreprocessMultimodal([new("human", "Q?")], false, true, "v1")[0].Value);
        Assert.Equal("<image>Q", LlavaPreprocessor.PreprocessMultimodal([new("human", "<image>Q")], false, true, "v1")[0].Value);
    }

    [Fact]
    public void StartEndNeedsTheAddedTokens()
    {
        Assert.Throws<ArgumentException>(() => new LlavaPreprocessor(TrainFixtures.Tokenizer, TrainFixtures.FinetuneOptions with { MmUseImStartEnd = true }));
        var tok = TrainFixtures.Tokenizer.WithAddedTokens("<im_patch>", "<im_start>", "<im_end>");
        var pre = new LlavaPreprocessor(tok, TrainFixtures.FinetuneOptions with { MmUseImStartEnd = true });
        var rec = new LlavaRecord(0, "x", "img.png", [new("human", "<image>\nWhat?"), new("gpt", "This.")]);
        var t = pre.Process(rec);
        int start = tok.TokenToId("<im_start>")!.Value, end = tok.TokenToId("<im_end>")!.Value;
        int at = Array.IndexOf(t.InputIds, -200);
        Assert.Equal(start, t.InputIds[at - 1]);
        Assert.Equal(end, t.InputIds[at + 1]);
        Assert.False(t.TokenizationMismatch);
        Assert.Equal(tok.Encode("This.</s>", addBos: false).Length, t.SupervisedCount);
    }

    [Fact]
    public void LlavaV1TemplateUsesTheSameMasking()
    {
        var pre = new LlavaPreprocessor(TrainFixtures.Tokenizer, TrainFixtures.FinetuneOptions with { Template = ConversationTemplates.Get("llava_v1") });
        var t = pre.Preprocess([new("human", "Hi"), new("gpt", "Hello there."), new("human", "Again?"), new("gpt", "Yes.")], hasImage: false);
        Assert.False(t.TokenizationMismatch);
        Assert.Equal("Hello there.</s> Yes.</s>", TrainFixtures.Tokenizer.Decode(t.Labels.Where(l => l != -100), skipSpecialTokens: false));
    }

    [Fact]
    public void UnsupportedTemplatesFailClearly()
    {
        var e = Assert.Throws<NotSupportedException>(() => new LlavaPreprocessor(TrainFixtures.Tokenizer, TrainFixtures.FinetuneOptions with { Template = ConversationTemplates.Get("mpt") }));
        Assert.Contains("mpt", e.Message);
    }
}
