using System.Text;

namespace Llava.Text.Tests;

public class StreamingDecoderTests
{
    /// <summary>
    /// Pushes ids one by one: after each push the emitted text must be a prefix of Decode(ids so far), and
    /// equal to it whenever no UTF-8 character is incomplete; after Flush it must equal the full decode.
    /// </summary>
    static void AssertStreamsLikeDecode(LlamaTokenizer tok, IReadOnlyList<int> ids, bool skip)
    {
        var dec = tok.CreateStreamingDecoder(skip);
        var emitted = new StringBuilder();
        for (int i = 0; i < ids.Count; i++)
        {
            emitted.Append(dec.Push(ids[i]));
            var full = tok.Decode(ids.Take(i + 1), skip);
            var sofar = emitted.ToString();
            if (!full.StartsWith(sofar, StringComparison.Ordinal))
                Assert.Fail($"step {i}: emitted '{sofar}' is not a prefix of decode '{full}' (ids {string.Join(",", ids.Take(i + 1))})");
            if (!full.EndsWith('\uFFFD') && !tok.Options.Legacy)
                Assert.Equal(full, sofar);
        }
        emitted.Append(dec.Flush());
        Assert.Equal(tok.Decode(ids, skip), emitted.ToString());
    }

    [Theory]
    [InlineData("Emoji: 🙂🚀👍🏽 family 👨‍👩‍👧 flag 🇫🇷")]
    [InlineData("中文：这是一只猫。它在睡觉。")]
    [InlineData("日本語とカタカナ、한국어, русский текст")]
    [InlineData("  leading spaces and a 🐍 at the end 🐍")]
    [InlineData("Ünïcödé àccents: naïve café, Straße, Ω≈ç√∫")]
    public void MultiByteCharactersComeOutWhole(string text)
    {
        var tok = TokenizerFixtures.Hf;
        var ids = tok.Encode(text);
        var dec = tok.CreateStreamingDecoder();
        var pieces = new List<string>();
        foreach (int id in ids) pieces.Add(dec.Push(id));
        pieces.Add(dec.Flush());
        Assert.Equal(text, string.Concat(pieces));
        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD'));
        AssertStreamsLikeDecode(tok, ids, skip: true);
        AssertStreamsLikeDecode(tok, ids, skip: false);
    }

    [Fact]
    public void EveryRoundtripCaseStreamsLikeDecode()
    {
        foreach (var c in TokenizerFixtures.RoundtripCases)
        {
            foreach (bool skip in new[] { true, false })
            {
                AssertStreamsLikeDecode(TokenizerFixtures.Hf, c.GetProperty("hf_ids").Ints(), skip);
                AssertStreamsLikeDecode(TokenizerFixtures.Original, c.GetProperty("original_ids").Ints(), skip);
                // Generated text has no BOS: the first piece's leading "▁" is dropped as in decode.
                AssertStreamsLikeDecode(TokenizerFixtures.Hf, c.GetProperty("hf_ids_no_bos").Ints(), skip);
            }
        }
    }

    [Fact]
    public void FirstPieceLeadingSpaceIsDropped()
    {
        var tok = TokenizerFixtures.Hf;
        var dec = tok.CreateStreamingDecoder();
        Assert.Equal("Hello", dec.Push(15043));   // "▁Hello"
        Assert.Equal(" world", dec.Push(3186));   // "▁world"
        Assert.Equal("", dec.Flush());
    }

    [Fact]
    public void SplitCharacterWaitsForItsLastByte()
    {
        var tok = TokenizerFixtures.Hf;
        var dec = tok.CreateStreamingDecoder();
        // "🙂" = F0 9F 99 82 as byte-fallback pieces <0xF0>=243 ...
        Assert.Equal("", dec.Push(243));
        Assert.Equal("", dec.Push(162));
        Assert.Equal("", dec.Push(156));
        Assert.Equal("🙂", dec.Push(133));
        // A truncated character is flushed as one U+FFFD per byte, like SentencePiece.
        Assert.Equal("", dec.Push(243));
        Assert.Equal("", dec.Push(162));
        Assert.Equal("\uFFFD\uFFFD", dec.Flush());
    }

    [Fact]
    public void RandomIdSequencesStreamLikeDecode()
    {
        var rng = new Random(1234);
        // Mix of specials, <image>/<pad>, "▁", byte pieces (incl. invalid UTF-8), words, out-of-vocab ids.
        int[] interesting = [0, 1, 2, 32000, 32001, 32005, 29871, 259, 13, 243, 162, 156, 133, 232, 177, 134, 195, 131, 15043, 3186, 29889, 30275, 4002];
        foreach (var tok in new[] { TokenizerFixtures.Hf, TokenizerFixtures.Original })
        {
            for (int trial = 0; trial < 300; trial++)
            {
                int n = rng.Next(1, 14);
                var ids = new int[n];
                for (int i = 0; i < n; i++)
                    ids[i] = rng.Next(4) == 0 ? rng.Next(0, 32000) : interesting[rng.Next(interesting.Length)];
                AssertStreamsLikeDecode(tok, ids, skip: true);
                AssertStreamsLikeDecode(tok, ids, skip: false);
            }
        }
    }

    [Fact]
    public void ResetStartsOver()
    {
        var tok = TokenizerFixtures.Hf;
        var dec = tok.CreateStreamingDecoder();
        dec.Push(15043);
        dec.Push(243);
        dec.Reset();
        Assert.Equal("Hello", dec.Push(15043));
    }
}
