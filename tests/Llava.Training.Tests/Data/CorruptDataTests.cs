using System.Text.Json.Nodes;
using Llava.Tests;
using Llava.Text;
using Llava.Training.Data;

namespace Llava.Training.Tests.Data;

/// <summary>Bad records are skipped and counted; the good ones train exactly as in a clean file.</summary>
public class CorruptDataTests
{
    /// <summary>A temp image folder with the fixture images, a truncated JPEG, a garbage "PNG" and an empty file.</summary>
    static string MakeImageFolder(TempDir dir)
    {
        string folder = Path.Combine(dir.Path, "images");
        Directory.CreateDirectory(folder);
        foreach (var f in Directory.GetFiles(TrainFixtures.ImageFolder)) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        var jpeg = File.ReadAllBytes(Path.Combine(TrainFixtures.ImageFolder, "extreme_ironing.jpg"));
        File.WriteAllBytes(Path.Combine(folder, "truncated.jpg"), jpeg[..(jpeg.Length / 3)]);
        File.WriteAllBytes(Path.Combine(folder, "garbage.png"), "this is not an image at all, just text"u8.ToArray());
        File.WriteAllBytes(Path.Combine(folder, "empty.png"), []);
        return folder;
    }

    static JsonNode Good(string mode, int i) => JsonNode.Parse(File.ReadAllText(TrainFixtures.DataPath(mode)))!.AsArray()[i]!.DeepClone();

    static JsonObject Rec(string id, string? image, params (string From, string Value)[] turns)
    {
        var o = new JsonObject { ["id"] = id };
        if (image != null) o["image"] = image;
        o["conversations"] = new JsonArray(turns.Select(t => (JsonNode)new JsonObject { ["from"] = t.From, ["value"] = t.Value }).ToArray());
        return o;
    }

    static string WriteFinetuneWithBadRecords(TempDir dir)
    {
        var list = new JsonArray
        {
            Good("finetune", 0),
            JsonValue.Create(42),                                                           // InvalidRecord: not an object
            new JsonObject { ["id"] = "no-conv", ["image"] = "tiny_37x61.png" },            // MissingConversations
            Rec("empty-conv", null),                                                        // MissingConversations
            Good("finetune", 1),
            new JsonObject { ["id"] = "conv-string", ["conversations"] = "hello" },          // InvalidRecord
            new JsonObject { ["id"] = "bad-turn", ["conversations"] = new JsonArray(new JsonObject { ["from"] = "human", ["value"] = 3 }) }, // InvalidRecord
            new JsonObject { ["id"] = "bad-image-type", ["image"] = 7, ["conversations"] = new JsonArray() }, // InvalidRecord
            Rec("missing-image", "does_not_exist.jpg", ("human", "<image>\nWhat?"), ("gpt", "Nothing.")), // ImageMissing
            Rec("empty-image", "empty.png", ("human", "<image>\nWhat?"), ("gpt", "Nothing.")),            // ImageMissing
            Rec("unknown-role", null, ("human", "Hi"), ("assistant", "Hello")),             // UnknownRole
            Rec("two-humans", null, ("human", "Hi"), ("human", "Hello?"), ("gpt", "Yes")),  // RolesNotAlternating
            Rec("only-gpt", null, ("gpt", "Hello")),                                        // RolesNotAlternating
            Good("finetune", 2),
            Rec("two-images", "tiny_37x61.png", ("human", "<image>\nA?"), ("gpt", "B."), ("human", "<image> C?"), ("gpt", "D.")), // UnsupportedFormat
            Rec("truncated", "truncated.jpg", ("human", "<image>\nWhat?"), ("gpt", "Ironing.")),   // ImageCorrupt (lazily)
            Rec("garbage", "garbage.png", ("human", "<image>\nWhat?"), ("gpt", "Noise.")),          // ImageCorrupt (lazily)
            Good("finetune", 3),
        };
        string path = Path.Combine(dir.Path, "data.json");
        File.WriteAllText(path, list.ToJsonString());
        return path;
    }

    [Fact]
    public void BadRecordsAreSkippedAndCountedAtLoad()
    {
        using var dir = new TempDir();
        var options = TrainFixtures.FinetuneOptions with { ImageFolder = MakeImageFolder(dir) };
        var warnings = new List<DataWarning>();
        var ds = LlavaDataset.Load(WriteFinetuneWithBadRecords(dir), TrainFixtures.Tokenizer, TrainFixtures.Processor, options, warnings.Add);

        Assert.Equal(18, ds.Report.TotalRecords);
        Assert.Equal(6, ds.Count); // 4 good + the 2 whose images only fail when decoded
        Assert.Equal(["ft-0", "ft-1", "ft-2", "truncated", "garbage", "ft-3"], ds.Records.Select(r => r.Id));
        Assert.Equal(4, ds.Report.Count(DataIssue.InvalidRecord));
        Assert.Equal(2, ds.Report.Count(DataIssue.MissingConversations));
        Assert.Equal(2, ds.Report.Count(DataIssue.ImageMissing));
        Assert.Equal(1, ds.Report.Count(DataIssue.UnknownRole));
        Assert.Equal(2, ds.Report.Count(DataIssue.RolesNotAlternating));
        Assert.Equal(1, ds.Report.Count(DataIssue.UnsupportedFormat));
        Assert.Equal(0, ds.Report.Count(DataIssue.ImageCorrupt));
        Assert.Equal(12, ds.Report.Skipped);
        Assert.Equal(12, warnings.Count);
        // Each warning names the record.
        Assert.Contains(warnings, w => w.SourceIndex == 1 && w.Id == "#1" && w.Issue == DataIssue.InvalidRecord);
        Assert.Contains(warnings, w => w.Id == "missing-image" && w.Message.Contains("does_not_exist.jpg"));
        Assert.Contains(warnings, w => w.Id == "unknown-role" && w.Message.Contains("\"assistant\""));
        Assert.Contains("record #10 (id \"unknown-role\")", warnings.Single(w => w.Id == "unknown-role").ToString());

        // Lazily: the corrupt images fail once, are counted once, and never again.
        Assert.False(ds.TryGetSample(3, out _));
        Assert.False(ds.TryGetSample(3, out _));
        Assert.Throws<SampleUnavailableException>(() => ds.GetSample(4));
        Assert.Equal(2, ds.Report.Count(DataIssue.ImageCorrupt));
        Assert.Contains(ds.Report.Warnings, w => w.Id == "truncated" && w.Issue == DataIssue.ImageCorrupt);
        Assert.Equal(14, ds.Report.Skipped);
        Assert.Equal(0, ds.Report.TokenizationMismatches);
        Assert.Contains("ImageCorrupt 2", ds.Report.ToString());
    }

    [Fact]
    public void GoodRecordsAreUnaffected()
    {
        using var dir = new TempDir();
        var options = TrainFixtures.FinetuneOptions with { ImageFolder = MakeImageFolder(dir) };
        var dirty = LlavaDataset.Load(WriteFinetuneWithBadRecords(dir), TrainFixtures.Tokenizer, TrainFixtures.Processor, options);
        var clean = TrainFixtures.Load("finetune");
        foreach (var (d, c) in new[] { (0, 0), (1, 1), (2, 2), (5, 3) })
        {
            var a = dirty.GetSample(d);
            var b = clean.GetSample(c);
            Assert.Equal(b.Id, a.Id);
            Assert.Equal(b.InputIds, a.InputIds);
            Assert.Equal(b.Labels, a.Labels);
            Assert.Equal(b.PixelValues, a.PixelValues);
        }
    }

    [Fact]
    public void LoaderSkipsCorruptImagesAndKeepsBatchesFull()
    {
        using var dir = new TempDir();
        var options = TrainFixtures.FinetuneOptions with { ImageFolder = MakeImageFolder(dir) };
        var ds = LlavaDataset.Load(WriteFinetuneWithBadRecords(dir), TrainFixtures.Tokenizer, TrainFixtures.Processor, options);
        var loader = new LlavaDataLoader(ds, new SequentialSampler(ds.Count), batchSize: 2);
        for (int epoch = 0; epoch < 2; epoch++)
        {
            var batches = loader.GetBatches(epoch).ToList();
            Assert.Equal([["ft-0", "ft-1"], ["ft-2", "ft-3"]], batches.Select(b => b.Ids));
        }
        Assert.Equal(2, ds.Report.Count(DataIssue.ImageCorrupt)); // counted once, not per epoch
        var clean = TrainFixtures.Load("finetune");
        var expected = DataCollator.For(clean).Collate([clean.GetSample(2), clean.GetSample(3)]);
        var got = loader.GetBatches(0).Last();
        Assert.Equal(expected.InputIds, got.InputIds);
        Assert.Equal(expected.Labels, got.Labels);
        Assert.Equal(expected.AttentionMask, got.AttentionMask);
        Assert.Equal(expected.Images, got.Images);
    }

    [Fact]
    public void DecodeCheckFindsCorruptImagesAtLoad()
    {
        using var dir = new TempDir();
        var options = TrainFixtures.FinetuneOptions with { ImageFolder = MakeImageFolder(dir), ImageCheck = ImageCheck.Decode };
        var ds = LlavaDataset.Load(WriteFinetuneWithBadRecords(dir), TrainFixtures.Tokenizer, TrainFixtures.Processor, options);
        Assert.Equal(["ft-0", "ft-1", "ft-2", "ft-3"], ds.Records.Select(r => r.Id));
        Assert.Equal(2, ds.Report.Count(DataIssue.ImageCorrupt));
        Assert.Equal(14, ds.Report.Skipped);
    }

    [Fact]
    public void PlainFormatRejectsWhatPreprocessPlainWouldAssertOn()
    {
        using var dir = new TempDir();
        var list = new JsonArray
        {
            Good("pretrain", 0),
            Rec("text-only", null, ("human", "Hi"), ("gpt", "Hello")),
            Rec("no-image-token", "tiny_37x61.png", ("human", "Describe."), ("gpt", "A picture.")),
            Rec("three-turns", "tiny_37x61.png", ("human", "<image>"), ("gpt", "A."), ("human", "More?")),
        };
        string path = Path.Combine(dir.Path, "pt.json");
        File.WriteAllText(path, list.ToJsonString());
        var ds = LlavaDataset.Load(path, TrainFixtures.Tokenizer, TrainFixtures.Processor, TrainFixtures.PretrainOptions);
        Assert.Equal(["pt-0"], ds.Records.Select(r => r.Id));
        Assert.Equal(3, ds.Report.Count(DataIssue.UnsupportedFormat));
        Assert.Equal(TrainFixtures.Load("pretrain").GetSample(0).Labels, ds.GetSample(0).Labels);
    }

    [Theory]
    [InlineData("{\"id\": 1, \"conversations\": []}", "top level")]
    [InlineData("[{\"id\": 1,", "not valid JSON")]
    [InlineData("", "not valid JSON")]
    [InlineData("\"just a string\"", "top level")]
    public void BadTopLevelJsonIsOneClearError(string json, string expected)
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "bad.json");
        File.WriteAllText(path, json);
        var e = Assert.Throws<LlavaDataException>(() =>
            LlavaDataset.Load(path, TrainFixtures.Tokenizer, TrainFixtures.Processor, TrainFixtures.FinetuneOptions));
        Assert.Contains(expected, e.Message);
        Assert.Contains("bad.json", e.Message);
    }

    [Fact]
    public void MissingDataFileIsOneClearError()
    {
        var e = Assert.Throws<LlavaDataException>(() =>
            LlavaDataset.Load("/nonexistent/data.json", TrainFixtures.Tokenizer, TrainFixtures.Processor, TrainFixtures.FinetuneOptions));
        Assert.Contains("/nonexistent/data.json", e.Message);
    }

    [Fact]
    public void LeadingGptTurnIsDroppedAsInLlava()
    {
        using var dir = new TempDir();
        var rec = Good("finetune", 3).AsObject();
        rec["conversations"]!.AsArray().Insert(0, new JsonObject { ["from"] = "gpt", ["value"] = "Ignored opener." });
        string path = Path.Combine(dir.Path, "d.json");
        File.WriteAllText(path, new JsonArray(rec).ToJsonString());
        var ds = LlavaDataset.Load(path, TrainFixtures.Tokenizer, TrainFixtures.Processor, TrainFixtures.FinetuneOptions);
        var clean = TrainFixtures.Load("finetune").GetSample(3);
        Assert.Equal(clean.InputIds, ds.GetSample(0).InputIds);
        Assert.Equal(clean.Labels, ds.GetSample(0).Labels);
    }
}
