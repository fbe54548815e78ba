using System.Text.Json;

namespace Llava.Text.Tests;

/// <summary>The prompts and input ids recorded in reference/reference.json.</summary>
public class ReferencePromptTests
{
    static JsonElement Ref => TokenizerFixtures.Reference;

    /// <summary>Builds a prompt from reference.json's "turns" the way LLaVA's CLI does ("&lt;image&gt;\n" + question).</summary>
    static string BuildPrompt(string template, bool withImage, bool asImageMessage = false)
    {
        var conv = ConversationTemplates.Get(template).NewConversation();
        var turns = Ref.GetProperty("turns").EnumerateArray().ToArray();
        for (int i = 0; i < turns.Length; i++)
        {
            var user = turns[i][0].GetString()!;
            var answer = turns[i][1].ValueKind == JsonValueKind.Null ? null : turns[i][1].GetString();
            if (i == 0 && withImage)
            {
                if (asImageMessage) conv.AppendMessage(conv.Template.UserRole, user, hasImage: true);
                else conv.AppendMessage(conv.Template.UserRole, "<image>\n" + user);
            }
            else conv.AppendMessage(conv.Template.UserRole, user);
            conv.AppendMessage(conv.Template.AssistantRole, answer);
        }
        return conv.GetPrompt();
    }

    [Fact]
    public void MainPromptUsesLlavaV1()
    {
        Assert.Equal("llava_v1", Ref.GetProperty("prompt_template").GetString());
        Assert.Equal(Ref.GetProperty("prompt").GetString(), BuildPrompt("llava_v1", withImage: true));
        Assert.Equal(Ref.GetProperty("prompt").GetString(), BuildPrompt("llava_v1", withImage: true, asImageMessage: true));
    }

    [Fact]
    public void ExtraPrompts()
    {
        foreach (var p in Ref.GetProperty("extra_prompts").EnumerateObject())
        {
            Assert.Equal(p.Value.GetString(), BuildPrompt(p.Name, withImage: true));
            Assert.Equal(p.Value.GetString(), BuildPrompt(p.Name, withImage: true, asImageMessage: true));
        }
    }

    [Fact]
    public void TextOnlyPrompt()
    {
        var conv = ConversationTemplates.Get("llava_v1").NewConversation()
            .AppendMessage("USER", "Write one sentence about the sea.")
            .AppendMessage("ASSISTANT", null);
        Assert.Equal(Ref.GetProperty("text_only_prompt").GetString(), conv.GetPrompt());
    }

    [Fact]
    public void InputIdsOfEveryCase()
    {
        foreach (var c in Ref.GetProperty("cases").EnumerateArray())
        {
            bool hasImage = c.GetProperty("image").ValueKind != JsonValueKind.Null;
            var prompt = Ref.GetProperty(hasImage ? "prompt" : "text_only_prompt").GetString()!;
            var expectedHf = c.GetProperty("input_ids_hf").Ints();
            var expectedOriginal = c.GetProperty("input_ids_original").Ints();

            Assert.Equal(expectedHf, TokenizerFixtures.Hf.Encode(prompt));
            Assert.Equal(expectedOriginal, TokenizerFixtures.Original.TokenizerImageToken(prompt));
            // The HF checkpoint's tokenizer gives the same ids through tokenizer_image_token.
            Assert.Equal(expectedOriginal, TokenizerFixtures.Hf.TokenizerImageToken(prompt));
            if (hasImage)
            {
                Assert.Equal(32000, expectedHf[c.GetProperty("image_token_position_hf").GetInt32()]);
                Assert.Single(expectedHf, 32000);
            }
        }
    }

    [Fact]
    public void TokenizerImageTokenAddsSpaceAfterImage()
    {
        var tok = TokenizerFixtures.Original;
        // "USER: " then the image, then the second chunk starts with its own "▁" (29871) before "\n" (13).
        Assert.Equal(new[] { 1, 3148, 1001, 29901, 29871, -200, 29871, 13, 4002, 29581, 372, 29889 },
            tok.TokenizerImageToken("USER: <image>\nDescribe it."));
        // Prompt starting with the image: empty first chunk keeps only its BOS.
        Assert.Equal(new[] { 1, -200, 29871, 13, 5618 }, tok.TokenizerImageToken("<image>\nWhat"));
        // Two images and a custom placeholder id: chunks "A", "" and " B", each encoded on its own.
        int[] expected = [1, .. tok.Encode("A")[1..], 7, 7, .. tok.Encode(" B")[1..]];
        Assert.Equal(expected, tok.TokenizerImageToken("A<image><image> B", imageTokenId: 7));
        // Without an image it is plain encoding.
        Assert.Equal(tok.Encode("No image here."), tok.TokenizerImageToken("No image here."));
    }

    [Fact]
    public void HfDecodeOfReferenceIds()
    {
        var c = Ref.GetProperty("cases")[0];
        var prompt = Ref.GetProperty("prompt").GetString()!;
        var ids = c.GetProperty("input_ids_hf").Ints();
        // skip_special_tokens drops <s> and <image>; the space before <image> and the "\n" after it remain.
        Assert.Equal(prompt.Replace("<image>", ""), TokenizerFixtures.Hf.Decode(ids));
        Assert.Equal("<s> " + prompt.Replace("<image>", " <image> "), TokenizerFixtures.Hf.Decode(ids, skipSpecialTokens: false));
    }

    [Fact]
    public void GreedyTextDecodes()
    {
        foreach (var c in Ref.GetProperty("cases").EnumerateArray())
        {
            var ids = c.GetProperty("greedy_ids").Ints();
            Assert.Equal(c.GetProperty("greedy_text").GetString(), TokenizerFixtures.Hf.Decode(ids));
            Assert.Equal(c.GetProperty("greedy_tokens").Strings(), ids.Select(TokenizerFixtures.Hf.IdToToken).ToArray());
            if (c.TryGetProperty("original_code_greedy_text", out var t))
                Assert.Equal(t.GetString(), TokenizerFixtures.Original.Decode(c.GetProperty("original_code_greedy_ids").Ints()));
        }
    }
}
