namespace Llava.Text.Tests;

/// <summary>
/// Expected prompts written out by hand from llava/conversation.py (commit c121f04): system prompts,
/// roles and separators are copied from the Python source, and the concatenation follows get_prompt().
/// </summary>
public class ConversationTemplateTests
{
    const string HumanSystem = "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.";
    const string UserSystem = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";
    const string MmtagSystem = "A chat between a curious user and an artificial intelligence assistant. The assistant is able to understand the visual content that the user provides, and assist the user with a variety of tasks using natural language.The visual content will be provided with the following format: <Image>visual content</Image>.";
    const string Llama2System = "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being safe.  Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, or illegal content. Please ensure that your responses are socially unbiased and positive in nature.\n\nIf a question does not make any sense, or is not factually coherent, explain why instead of answering something not correct. If you don't know the answer to a question, please don't share false information.";
    const string LlavaLlama2System = "You are a helpful language and vision assistant. You are able to understand the visual content that the user provides, and assist the user with a variety of tasks using natural language.";
    const string FewShotQuestion = "What are the key differences between renewable and non-renewable energy sources?";
    const string FewShotAnswer = "Renewable energy sources are those that can be replenished naturally in a relatively short amount of time, such as solar, wind, hydro, geothermal, and biomass. Non-renewable energy sources, on the other hand, are finite and will eventually be depleted, such as coal, oil, and natural gas. Here are some key differences between renewable and non-renewable energy sources:\n1. Availability: Renewable energy sources are virtually inexhaustible, while non-renewable energy sources are finite and will eventually run out.\n2. Environmental impact: Renewable energy sources have a much lower environmental impact than non-renewable sources, which can lead to air and water pollution, greenhouse gas emissions, and other negative effects.\n3. Cost: Renewable energy sources can be more expensive to initially set up, but they typically have lower operational costs than non-renewable sources.\n4. Reliability: Renewable energy sources are often more reliable and can be used in more remote locations than non-renewable sources.\n5. Flexibility: Renewable energy sources are often more flexible and can be adapted to different situations and needs, while non-renewable sources are more rigid and inflexible.\n6. Sustainability: Renewable energy sources are more sustainable over the long term, while non-renewable sources are not, and their depletion can lead to economic and social instability.\n";

    /// <summary>User "Q1", assistant "A1", user "Q2", assistant to answer.</summary>
    static string TwoTurns(string name)
    {
        var t = ConversationTemplates.Get(name);
        return t.NewConversation()
            .AppendMessage(t.Roles[0], "Q1").AppendMessage(t.Roles[1], "A1")
            .AppendMessage(t.Roles[0], "Q2").AppendMessage(t.Roles[1], null)
            .GetPrompt();
    }

    public static TheoryData<string, string> TwoTurnExpected => new()
    {
        { "default", HumanSystem + "###Human: " + FewShotQuestion + "###Assistant: " + FewShotAnswer + "###Human: Q1###Assistant: A1###Human: Q2###Assistant:" },
        { "v0", HumanSystem + "###Human: " + FewShotQuestion + "###Assistant: " + FewShotAnswer + "###Human: Q1###Assistant: A1###Human: Q2###Assistant:" },
        { "v1", UserSystem + " USER: Q1 ASSISTANT: A1</s>USER: Q2 ASSISTANT:" },
        { "vicuna_v1", UserSystem + " USER: Q1 ASSISTANT: A1</s>USER: Q2 ASSISTANT:" },
        { "llama_2", "[INST] <<SYS>>\n" + Llama2System + "\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST]" },
        { "mistral_instruct", "[INST] Q1 [/INST] A1 </s>[INST] Q2 [/INST]" },
        { "chatml_direct", "<|im_start|>system\nAnswer the questions.<|im_end|><|im_start|>user\nQ1<|im_end|><|im_start|>assistant\nA1<|im_end|><|im_start|>user\nQ2<|im_end|><|im_start|>assistant\n" },
        { "mistral_direct", "<|im_start|>system\nAnswer the questions.<|im_end|><|im_start|>user\nQ1<|im_end|><|im_start|>assistant\nA1<|im_end|><|im_start|>user\nQ2<|im_end|><|im_start|>assistant\n" },
        { "llava_v0", HumanSystem + "###Human: Q1###Assistant: A1###Human: Q2###Assistant:" },
        { "v0_mmtag", MmtagSystem + "###Human: Q1###Assistant: A1###Human: Q2###Assistant:" },
        { "llava_v1", HumanSystem + " USER: Q1 ASSISTANT: A1</s>USER: Q2 ASSISTANT:" },
        { "v1_mmtag", MmtagSystem + " USER: Q1 ASSISTANT: A1</s>USER: Q2 ASSISTANT:" },
        { "llava_llama_2", "[INST] <<SYS>>\n" + LlavaLlama2System + "\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST]" },
        { "mpt", "<|im_start|>system\nA conversation between a user and an LLM-based AI assistant. The assistant gives helpful and honest answers.<|im_end|><|im_start|>user\nQ1<|im_end|><|im_start|>assistant\nA1<|im_end|><|im_start|>user\nQ2<|im_end|><|im_start|>assistant\n" },
    };

    [Theory, MemberData(nameof(TwoTurnExpected))]
    public void TwoTurnPrompt(string name, string expected) => Assert.Equal(expected, TwoTurns(name));

    [Theory]
    [InlineData("plain")]
    [InlineData("v0_plain")]
    public void PlainCannotRenderAnAnswerBecauseSep2IsNone(string name)
    {
        // conv_llava_plain has sep2=None: Python raises TypeError on `message + None` for an assistant turn.
        Assert.Throws<InvalidOperationException>(() => TwoTurns(name));
        var t = ConversationTemplates.Get(name);
        var conv = t.NewConversation().AppendMessage(t.Roles[0], "Q1").AppendMessage(t.Roles[1], null);
        Assert.Equal("Q1\n", conv.GetPrompt());
        var withImage = t.NewConversation().AppendMessage(t.Roles[0], "Describe. <image>", hasImage: true).AppendMessage(t.Roles[1], null);
        Assert.Equal("<image>\nDescribe.\n", withImage.GetPrompt());
    }

    [Fact]
    public void EveryRegistryKeyIsCovered()
    {
        string[] expected = ["default", "v0", "v1", "vicuna_v1", "llama_2", "mistral_instruct", "chatml_direct", "mistral_direct",
            "plain", "v0_plain", "llava_v0", "v0_mmtag", "llava_v1", "v1_mmtag", "llava_llama_2", "mpt"];
        Assert.Equal(expected, ConversationTemplates.Names);
        var tested = TwoTurnExpected.Select(row => (string)row[0]).Concat(["plain", "v0_plain"]);
        Assert.Equal(expected.Order(), tested.Order());
    }

    [Fact]
    public void Llava15SingleTurnPrompt()
    {
        var conv = ConversationTemplates.Get("vicuna_v1").NewConversation()
            .AppendMessage("USER", "<image>\nWhat is shown?")
            .AppendMessage("ASSISTANT", null);
        Assert.Equal("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions. USER: <image>\nWhat is shown? ASSISTANT:", conv.GetPrompt());

        // The same through an image message: "<image>" is removed, the text stripped, "<image>\n" prepended.
        var viaImage = ConversationTemplates.Get("vicuna_v1").NewConversation()
            .AppendMessage("USER", "  What is shown? <image> ", hasImage: true)
            .AppendMessage("ASSISTANT", null);
        Assert.Equal(conv.GetPrompt(), viaImage.GetPrompt());
    }

    public static TheoryData<string, string> ImageExpected => new()
    {
        // mmtag: the image goes into an extra first exchange "<Image><image></Image>" / "Received.".
        { "v1_mmtag", MmtagSystem + " USER: <Image><image></Image> ASSISTANT: Received.</s>USER: What is shown? ASSISTANT:" },
        { "v0_mmtag", MmtagSystem + "###Human: <Image><image></Image>###Assistant: Received.###Human: What is shown?###Assistant:" },
        { "llava_llama_2", "[INST] <<SYS>>\n" + LlavaLlama2System + "\n<</SYS>>\n\n<image>\nWhat is shown? [/INST]" },
        { "mistral_instruct", "[INST] <image>\nWhat is shown? [/INST]" },
        { "chatml_direct", "<|im_start|>system\nAnswer the questions.<|im_end|><|im_start|>user\n<image>\nWhat is shown?<|im_end|><|im_start|>assistant\n" },
        { "llava_v0", HumanSystem + "###Human: <image>\nWhat is shown?###Assistant:" },
        // conv_vicuna_v0's first message is the few-shot question (not an image tuple): the text stays as written.
        { "default", HumanSystem + "###Human: " + FewShotQuestion + "###Assistant: " + FewShotAnswer + "###Human: What is shown? <image>###Assistant:" },
    };

    [Theory, MemberData(nameof(ImageExpected))]
    public void ImageMessagePrompt(string name, string expected)
    {
        var t = ConversationTemplates.Get(name);
        var conv = t.NewConversation()
            .AppendMessage(t.Roles[0], "What is shown? <image>", hasImage: true)
            .AppendMessage(t.Roles[1], null);
        Assert.Equal(expected, conv.GetPrompt());
    }

    [Fact]
    public void MmtagWithOnlyAnImageLeavesTheUserTurnOpen()
    {
        var t = ConversationTemplates.Get("v1_mmtag");
        var conv = t.NewConversation().AppendMessage("USER", "<image>", hasImage: true).AppendMessage("ASSISTANT", null);
        // The stripped first message is "", which Python treats as "no message": "USER:" without a space.
        Assert.Equal(MmtagSystem + " USER: <Image><image></Image> ASSISTANT: Received.</s>USER:ASSISTANT:", conv.GetPrompt());
    }

    [Fact]
    public void EmptyTextCountsAsNoMessage()
    {
        var conv = ConversationTemplates.Get("llava_v0").NewConversation().AppendMessage("Human", "").AppendMessage("Assistant", null);
        Assert.Equal(HumanSystem + "###Human:Assistant:", conv.GetPrompt());
    }

    [Fact]
    public void Llama2RequiresAUserFirstMessage()
    {
        var t = ConversationTemplates.Get("llama_2");
        Assert.Throws<InvalidOperationException>(() => t.NewConversation().AppendMessage("ASSISTANT", "hi").GetPrompt());
        Assert.Throws<InvalidOperationException>(() => t.NewConversation().AppendMessage("USER", null).GetPrompt());
    }

    [Theory]
    [InlineData("vicuna_v1", "</s>")]
    [InlineData("llava_v1", "</s>")]
    [InlineData("llava_v0", "###")]
    [InlineData("default", "###")]
    [InlineData("mpt", "<|im_end|>")]
    [InlineData("chatml_direct", "<|im_end|>")]
    [InlineData("llama_2", "</s>")]
    [InlineData("mistral_instruct", "</s>")]
    [InlineData("plain", null)]
    public void StopStrings(string name, string? stop) => Assert.Equal(stop, ConversationTemplates.Get(name).StopString);

    [Fact]
    public void TemplatesAreSharedAndImmutable()
    {
        Assert.Same(ConversationTemplates.Get("v1"), ConversationTemplates.Get("vicuna_v1"));
        Assert.Same(ConversationTemplates.Get("default"), ConversationTemplates.Get("v0"));
        var t = ConversationTemplates.Get("default");
        Assert.Equal(2, t.Offset);
        Assert.Equal(2, t.Messages.Count);
        var conv = t.NewConversation().AppendMessage("Human", "x");
        Assert.Equal(2, t.Messages.Count);
        Assert.Equal(3, conv.Messages.Count);
        var copy = conv.Copy().AppendMessage("Assistant", null);
        Assert.Equal(3, conv.Messages.Count);
        Assert.Equal(4, copy.Messages.Count);
        Assert.Equal(t, t.Copy());
        var custom = t with { System = "S" };
        Assert.NotEqual(t.System, custom.System);
        Assert.Throws<KeyNotFoundException>(() => ConversationTemplates.Get("nope"));
    }

    [Fact]
    public void SetLastMessageTextStoresTheAnswer()
    {
        var conv = ConversationTemplates.Get("vicuna_v1").NewConversation().AppendMessage("USER", "Hi").AppendMessage("ASSISTANT", null);
        conv.SetLastMessageText("Hello.");
        conv.AppendMessage("USER", "Bye").AppendMessage("ASSISTANT", null);
        Assert.Equal(UserSystem + " USER: Hi ASSISTANT: Hello.</s>USER: Bye ASSISTANT:", conv.GetPrompt());
    }

    [Theory]
    [InlineData("llava-v1.5-7b", "llava_v1", "vicuna_v1")]
    [InlineData("liuhaotian/llava-v1.5-13b", "llava_v1", "vicuna_v1")]
    [InlineData("llava-1.5-7b-hf", "llava_v0", "vicuna_v1")]
    [InlineData("llava-v1.6-vicuna-7b", "llava_v1", "vicuna_v1")]
    [InlineData("llava-llama-2-13b-chat-lightning-preview", "llava_llama_2", "llava_llama_2")]
    [InlineData("llava-v1.6-mistral-7b", "mistral_instruct", "mistral_instruct")]
    [InlineData("llava-v1.6-34b", "chatml_direct", "chatml_direct")]
    [InlineData("LLaVA-Lightning-MPT-7B-preview", "mpt", "mpt")]
    [InlineData("LLaVA-13b-delta-v0", "llava_v0", "llava_v0")]
    public void AutoSelect(string modelName, string llavaCli, string ours)
    {
        Assert.Equal(llavaCli, ConversationTemplates.AutoSelectLikeLlavaCli(modelName));
        Assert.Equal(ours, ConversationTemplates.AutoSelect(modelName));
    }

    [Theory]
    [InlineData("/models/llava-v1.5-7b/", "llava-v1.5-7b")]
    [InlineData("runs/llava-v1.5-7b/checkpoint-500", "llava-v1.5-7b_checkpoint-500")]
    [InlineData("llava-v1.5-7b", "llava-v1.5-7b")]
    public void ModelNameFromPath(string path, string name) => Assert.Equal(name, ConversationTemplates.ModelNameFromPath(path));
}
