using System.Text.Json;
using Llava.Formats;
using Llava.Formats.Safetensors;

namespace Llava.Tests;

/// <summary>One case of tests/fixtures/llava-tiny/reference/reference.json with its tensors.</summary>
public sealed class ReferenceCase
{
    public required string Id { get; init; }
    public string? Image { get; init; }
    public string? Preprocess { get; init; }
    public required int[] InputIdsHf { get; init; }
    public int[]? InputIdsOriginal { get; init; }
    public required int[] GreedyIds { get; init; }
    /// <summary>Top-1/top-2 logit gap at each greedy step.</summary>
    public required float[] GreedyGaps { get; init; }
    public required int[] OriginalGreedyIds { get; init; }
    public required int[] LogitPositions { get; init; }
    public required string TensorsPath { get; init; }

    public float[] Tensor(string name)
    {
        using var f = SafetensorsFile.Open(TensorsPath);
        return f.Get(name).ToFloat32();
    }

    public bool HasTensor(string name)
    {
        using var f = SafetensorsFile.Open(TensorsPath);
        return f.Contains(name);
    }

    static readonly Lazy<JsonElement> root = new(() => JsonDocument.Parse(File.ReadAllBytes(Fixtures.TinyPath("reference", "reference.json"))).RootElement.Clone());
    public static JsonElement Root => root.Value;

    public static IReadOnlyList<ReferenceCase> All => all.Value;
    static readonly Lazy<List<ReferenceCase>> all = new(() => Root.GetProperty("cases").EnumerateArray().Select(Parse).ToList());

    public static ReferenceCase Get(string id) => All.Single(c => c.Id == id);

    static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    static ReferenceCase Parse(JsonElement e) => new()
    {
        Id = e.GetProperty("id").GetString()!,
        Image = e.TryGetProperty("image", out var im) && im.ValueKind == JsonValueKind.String ? im.GetString() : null,
        Preprocess = e.TryGetProperty("preprocess", out var pp) && pp.ValueKind == JsonValueKind.String ? pp.GetString() : null,
        InputIdsHf = Ints(e.GetProperty("input_ids_hf")),
        InputIdsOriginal = e.TryGetProperty("input_ids_original", out var io) && io.ValueKind == JsonValueKind.Array ? Ints(io) : null,
        GreedyIds = Ints(e.GetProperty("greedy_ids")),
        GreedyGaps = e.GetProperty("greedy_step_top2").EnumerateArray().Select(x => x.GetProperty("gap").GetSingle()).ToArray(),
        OriginalGreedyIds = Ints(e.GetProperty("original_code_greedy_ids")),
        LogitPositions = Ints(e.GetProperty("logits_positions")),
        TensorsPath = Fixtures.TinyPath(e.GetProperty("tensors").GetString()!.Split('/')),
    };

    public static IEnumerable<object[]> ImageCaseIds => All.Where(c => c.Image != null).Select(c => new object[] { c.Id });

    public override string ToString() => Id;
}

public static class Numerics
{
    /// <summary>‖a − b‖ / ‖b‖ over all elements, in double.</summary>
    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double num = 0, den = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = (double)actual[i] - expected[i];
            num += d * d;
            den += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(num / Math.Max(den, 1e-300));
    }

    public static double MaxAbs(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double m = 0;
        for (int i = 0; i < expected.Length; i++) m = Math.Max(m, Math.Abs((double)actual[i] - expected[i]));
        return m;
    }
}
