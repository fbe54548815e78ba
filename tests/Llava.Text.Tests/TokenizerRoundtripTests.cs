namespace Llava.Text.Tests;

/// <summary>Every string of reference/tokenizer_roundtrip.json against the three recorded tokenizers.</summary>
public class TokenizerRoundtripTests
{
    public static TheoryData<int> Cases => TokenizerFixtures.RoundtripIndices();

    static System.Text.Json.JsonElement Case(int i) => TokenizerFixtures.RoundtripCases.ElementAt(i);

    [Theory, MemberData(nameof(Cases))]
    public void HfTokenizerIds(int i)
    {
        var c = Case(i);
        var text = c.GetProperty("text").GetString()!;
        var tok = TokenizerFixtures.Hf;
        Assert.Equal(c.GetProperty("hf_ids").Ints(), tok.Encode(text));
        Assert.Equal(c.GetProperty("hf_ids_no_bos").Ints(), tok.Encode(text, addBos: false));
        Assert.Equal(c.GetProperty("hf_tokens").Strings(), tok.Encode(text).Select(tok.IdToToken).ToArray());
    }

    [Theory, MemberData(nameof(Cases))]
    public void HfTokenizerDecode(int i)
    {
        var c = Case(i);
        var ids = c.GetProperty("hf_ids").Ints();
        var tok = TokenizerFixtures.Hf;
        Assert.Equal(c.GetProperty("hf_decode").GetString(), tok.Decode(ids, skipSpecialTokens: false));
        Assert.Equal(c.GetProperty("hf_decode_skip_special").GetString(), tok.Decode(ids));
    }

    [Theory, MemberData(nameof(Cases))]
    public void OriginalTokenizerIdsAndDecode(int i)
    {
        var c = Case(i);
        var text = c.GetProperty("text").GetString()!;
        var tok = TokenizerFixtures.Original;
        var ids = c.GetProperty("original_ids").Ints();
        Assert.Equal(ids, tok.Encode(text));
        Assert.Equal(c.GetProperty("original_decode_skip_special").GetString(), tok.Decode(ids));
    }

    [Theory, MemberData(nameof(Cases))]
    public void RawSentencePiece(int i)
    {
        var c = Case(i);
        var text = c.GetProperty("text").GetString()!;
        var model = TokenizerFixtures.Hf.Model;
        var ids = c.GetProperty("sentencepiece_encode").Ints();
        Assert.Equal(ids, model.Encode(text));
        Assert.Equal(c.GetProperty("sentencepiece_decode").GetString(), model.Decode(ids));
    }

    [Fact]
    public void RoundtripFixtureHasTwentyCases() => Assert.Equal(20, TokenizerFixtures.RoundtripCases.Count());
}
