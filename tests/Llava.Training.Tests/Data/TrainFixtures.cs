using System.Text.Json;
using Llava.Formats;
using Llava.Formats.Safetensors;
using Llava.Tests;
using Llava.Text;
using Llava.Training.Data;
using Llava.Vision;

namespace Llava.Training.Tests.Data;

/// <summary>The training fixtures (tests/fixtures/llava-tiny/train) and the objects built from them, loaded once.</summary>
internal static class TrainFixtures
{
    static readonly Lazy<LlamaTokenizer> tokenizer = new(() => LlamaTokenizer.FromDirectory(Fixtures.TinyPath("original", "llava-v1.5-tiny")));
    static readonly Lazy<ClipImageProcessor> processor = new(() =>
        ClipImageProcessor.FromFile(Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336", "preprocessor_config.json")));
    static readonly Lazy<JsonElement> masking = new(() =>
        JsonDocument.Parse(File.ReadAllText(Fixtures.TinyPath("train", "masking.json"))).RootElement.Clone());

    /// <summary>The original-layout slow tokenizer (legacy=false, pad = unk = 0).</summary>
    public static LlamaTokenizer Tokenizer => tokenizer.Value;
    public static ClipImageProcessor Processor => processor.Value;
    public static JsonElement Masking => masking.Value;
    public static string ImageFolder => Fixtures.TinyPath("images");
    public static string DataPath(string name) => Fixtures.TinyPath("train", "data", name + ".json");

    /// <summary>Stage 1 as the fixture ran it: plain template, square images.</summary>
    public static LlavaDataOptions PretrainOptions => new()
    {
        ImageFolder = ImageFolder,
        Template = ConversationTemplates.Get("plain"),
        ImageAspectRatio = ImageAspectRatio.Square,
        ModelMaxLength = 2048,
    };

    /// <summary>Stage 2 as the fixture ran it: conv_templates["v1"], pad images.</summary>
    public static LlavaDataOptions FinetuneOptions => new()
    {
        ImageFolder = ImageFolder,
        Template = ConversationTemplates.Get("v1"),
        ImageAspectRatio = ImageAspectRatio.Pad,
        ModelMaxLength = 2048,
    };

    public static LlavaDataOptions OptionsFor(string mode) => mode == "pretrain" ? PretrainOptions : FinetuneOptions;

    public static LlavaDataset Load(string mode, LlavaDataOptions? options = null) =>
        LlavaDataset.Load(DataPath(mode), Tokenizer, Processor, options ?? OptionsFor(mode));

    public static IEnumerable<JsonElement> MaskingSamples(string mode) =>
        Masking.GetProperty(mode).GetProperty("samples").EnumerateArray();

    public static int[] Ints(this JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    public static long[] ReadInt64(string path, string name)
    {
        using var f = SafetensorsFile.Open(path);
        return f.Get(name).ToInt64();
    }

    public static (float[] Data, long[] Shape) ReadF32(string path, string name)
    {
        using var f = SafetensorsFile.Open(path);
        var t = f.Get(name);
        return (t.ToFloat32(), t.Shape);
    }

    public static TheoryData<string, string> MaskingCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var mode in new[] { "pretrain", "finetune" })
            foreach (var s in MaskingSamples(mode)) data.Add(mode, s.GetProperty("id").GetString()!);
        return data;
    }
}
