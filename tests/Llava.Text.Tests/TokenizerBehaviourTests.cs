using System.Diagnostics;
using Llava.Tests;

namespace Llava.Text.Tests;

public class TokenizerBehaviourTests
{
    static LlamaTokenizer Hf => TokenizerFixtures.Hf;

    [Fact]
    public void SpecialIdsAndVocabulary()
    {
        Assert.Equal(1, Hf.BosId);
        Assert.Equal(2, Hf.EosId);
        Assert.Equal(0, Hf.UnkId);
        Assert.Equal(32001, Hf.PadId);
        Assert.Equal(32002, Hf.VocabSize);
        Assert.Equal(32000, Hf.TokenToId("<image>"));
        Assert.Equal("<pad>", Hf.IdToToken(32001));
        Assert.Equal(29871, Hf.TokenToId("▁"));
        Assert.Equal("<0x0A>", Hf.IdToToken(13));
        Assert.Null(Hf.TokenToId("definitely-not-a-piece"));
        Assert.Throws<ArgumentOutOfRangeException>(() => Hf.IdToToken(32010));
        Assert.False(Hf.Options.Legacy);

        var orig = TokenizerFixtures.Original;
        Assert.Equal(0, orig.PadId);          // pad_token is <unk>
        Assert.Equal(32000, orig.VocabSize);
        Assert.Null(orig.TokenToId("<image>"));
        Assert.Equal(32000, Hf.Model.Count);
        Assert.True(Hf.Model.ByteFallback);
    }

    [Fact]
    public void TextRightAfterASpecialTokenGetsNoDummyPrefix()
    {
        // legacy=false: "\nWhat" after <image> is encoded as is; " inline" keeps its own space as "▁inline".
        Assert.Equal(new[] { 1, 32000, 13, 5618 }, Hf.Encode("<image>\nWhat"));
        Assert.Equal(new[] { 1, 32000, 10583 }, Hf.Encode("<image> inline"));
        // Literal "▁" in the input is treated as a space.
        Assert.Equal(Hf.Encode("Hello world"), Hf.Encode("Hello▁world"));
        Assert.Equal(new[] { 1 }, Hf.Encode(""));
        Assert.Equal(new[] { 1, 15043, 2 }, Hf.Encode("Hello", addEos: true));
        Assert.Equal(new[] { "▁Hello", "▁world" }, Hf.Tokenize("Hello world"));
    }

    [Fact]
    public void PadTokenIsSpecialButNotLegacyAdded()
    {
        // <pad> (a special token) is decoded inside its group; <image> (additional special beyond the
        // SentencePiece vocabulary) becomes its own space-joined part, as in transformers 4.45.
        Assert.Equal("Hi<pad> there", Hf.Decode([6324, 32001, 727], skipSpecialTokens: false));
        Assert.Equal("Hi <image> there", Hf.Decode([6324, 32000, 727], skipSpecialTokens: false));
        Assert.Equal("Hi there", Hf.Decode([6324, 32000, 727]));
        Assert.Equal("Hi", Hf.Decode([6324, 32005]));   // unknown ids produce nothing
    }

    [Fact]
    public void DecodeRoundTripsPlainText()
    {
        foreach (var text in new[] { "Hello world", "  two leading", "tabs\tand\nnewlines\n", "emoji 🙂 and 中文", "a<b>c</b>" })
            Assert.Equal(text, Hf.Decode(Hf.Encode(text)));
    }

    [Fact]
    public void LegacyModeAddsAPrefixAfterSpecialTokens()
    {
        var legacy = new LlamaTokenizer(Hf.Model, Hf.Options with { Legacy = true });
        // legacy=true: every chunk gets SentencePiece's dummy prefix, also the one after <image>.
        Assert.Equal(new[] { 1, 32000, 29871, 13, 5618 }, legacy.Encode("<image>\nWhat"));
        Assert.Equal(new[] { 1, 15043, 3186 }, legacy.Encode("Hello world"));
        Assert.Equal("Hello world", legacy.Decode(legacy.Encode("Hello world")));
    }

    [Fact]
    public void LegacyModeStreamsConsistently()
    {
        var legacy = new LlamaTokenizer(Hf.Model, Hf.Options with { Legacy = true });
        var rng = new Random(99);
        int[] pool = [1, 2, 32000, 32001, 29871, 259, 13, 243, 162, 156, 133, 15043, 3186, 29889];
        for (int trial = 0; trial < 200; trial++)
        {
            var ids = Enumerable.Range(0, rng.Next(1, 12)).Select(_ => pool[rng.Next(pool.Length)]).ToArray();
            foreach (bool skip in new[] { true, false })
            {
                var dec = legacy.CreateStreamingDecoder(skip);
                var emitted = "";
                for (int i = 0; i < ids.Length; i++)
                {
                    emitted += dec.Push(ids[i]);
                    Assert.StartsWith(emitted, legacy.Decode(ids.Take(i + 1), skip));
                }
                Assert.Equal(legacy.Decode(ids, skip), emitted + dec.Flush());
            }
        }
    }

    [Fact]
    public void MissingLegacyKeyMeansLegacyTrue()
    {
        var dir = Directory.CreateTempSubdirectory("llava-text-");
        try
        {
            File.Copy(Fixtures.TinyPath("hf", "tokenizer.model"), Path.Combine(dir.FullName, "tokenizer.model"));
            var tok = LlamaTokenizer.FromDirectory(dir.FullName);
            Assert.True(tok.Options.Legacy);
            Assert.Null(tok.PadId);
            Assert.Equal(32000, tok.VocabSize);
            Assert.Equal(new[] { 1, 15043, 3186 }, tok.Encode("Hello world"));

            File.WriteAllText(Path.Combine(dir.FullName, "tokenizer_config.json"), """{"legacy": false, "pad_token": "<unk>"}""");
            File.WriteAllText(Path.Combine(dir.FullName, "added_tokens.json"), """{"<image>": 32000}""");
            tok = LlamaTokenizer.FromDirectory(dir.FullName);
            Assert.False(tok.Options.Legacy);
            Assert.Equal(0, tok.PadId);
            // added_tokens.json tokens are added tokens (not special here): still split out of the text, but the
            // leading "▁" is only dropped in front of special tokens, so it stays.
            Assert.Equal(new[] { 1, 29871, 32000, 13, 5618 }, tok.Encode("<image>\nWhat"));
            Assert.False(tok.IsSpecialId(32000));
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public void AddedTokenStripFlags()
    {
        var opts = Hf.Options with
        {
            AddedTokens = [.. Hf.Options.AddedTokens, new AddedToken(32002, "<sep>", Special: false, LStrip: true, RStrip: true)],
        };
        var tok = new LlamaTokenizer(Hf.Model, opts);
        Assert.Equal(tok.Encode("a<sep>b"), tok.Encode("a  <sep>  b"));
    }

    [Fact]
    public void ConcurrentEncodeIsSafe()
    {
        var texts = TokenizerFixtures.RoundtripCases.Select(c => c.GetProperty("text").GetString()!).ToArray();
        var expected = texts.Select(t => Hf.Encode(t)).ToArray();
        Parallel.For(0, 2000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            int k = i % texts.Length;
            Assert.Equal(expected[k], Hf.Encode(texts[k]));
        });
    }

    [Fact]
    public void Encoding2000CharactersIsFast()
    {
        var sb = new System.Text.StringBuilder();
        var rng = new Random(5);
        string[] words = ["the", "image", "shows", "a", "man", "ironing", "clothes", "on", "the", "back", "of", "a", "yellow", "taxi", "🙂", "中文", "\n", "1234", "—", "naïve"];
        while (sb.Length < 2000) sb.Append(words[rng.Next(words.Length)]).Append(' ');
        var text = "A chat. USER: <image>\n" + sb.ToString()[..2000] + " ASSISTANT:";
        for (int i = 0; i < 100; i++) Hf.Encode(text);   // warm-up (lets the JIT tier up)
        // Median of individually timed runs: robust against other processes sharing the CPU.
        var times = new double[60];
        for (int i = 0; i < times.Length; i++)
        {
            var sw = Stopwatch.StartNew();
            Hf.Encode(text);
            times[i] = sw.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        double median = times[times.Length / 2];
        Assert.True(median < 10, $"encoding took {median:F2} ms (median)");
        Assert.Equal(text, Hf.Decode(Hf.Encode(text), skipSpecialTokens: false)[4..].Replace(" <image> ", "<image>"));
    }
}
