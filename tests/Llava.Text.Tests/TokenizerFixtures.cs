using System.Text.Json;
using Llava.Tests;

namespace Llava.Text.Tests;

/// <summary>Tokenizers and reference JSON from tests/fixtures/llava-tiny, loaded once.</summary>
internal static class TokenizerFixtures
{
    static readonly Lazy<LlamaTokenizer> hf = new(() => LlamaTokenizer.FromDirectory(Fixtures.TinyPath("hf")));
    static readonly Lazy<LlamaTokenizer> original = new(() => LlamaTokenizer.FromDirectory(Fixtures.TinyPath("original", "llava-v1.5-tiny")));
    static readonly Lazy<JsonElement> roundtrip = new(() => Load("tokenizer_roundtrip.json"));
    static readonly Lazy<JsonElement> reference = new(() => Load("reference.json"));

    /// <summary>The HF checkpoint's tokenizer (added &lt;image&gt;=32000, &lt;pad&gt;=32001).</summary>
    public static LlamaTokenizer Hf => hf.Value;
    /// <summary>The original LLaVA checkpoint's tokenizer (no added tokens, pad = &lt;unk&gt;).</summary>
    public static LlamaTokenizer Original => original.Value;
    public static JsonElement Roundtrip => roundtrip.Value;
    public static JsonElement Reference => reference.Value;

    static JsonElement Load(string name) =>
        JsonDocument.Parse(File.ReadAllText(Fixtures.TinyPath("reference", name))).RootElement.Clone();

    public static int[] Ints(this JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();
    public static string[] Strings(this JsonElement e) => e.EnumerateArray().Select(x => x.GetString()!).ToArray();

    public static IEnumerable<JsonElement> RoundtripCases => Roundtrip.GetProperty("cases").EnumerateArray();

    /// <summary>xunit member data: the index of every tokenizer round-trip case.</summary>
    public static TheoryData<int> RoundtripIndices()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < RoundtripCases.Count(); i++) data.Add(i);
        return data;
    }
}
