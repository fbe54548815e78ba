namespace Llava.Text.Tests.Jinja;

/// <summary>
/// Real chat templates copied verbatim (after JSON decoding) from the checkpoints' tokenizer_config.json /
/// chat_template.json; expected strings are derived by hand from Jinja semantics.
/// </summary>
public class RealTemplateTests
{
    /// <summary>llava-hf/llava-1.5-7b-hf (as in transformers' tests/models/llava/test_processing_llava.py).</summary>
    public const string LlavaHf = """{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}""";

    /// <summary>meta-llama/Llama-2-7b-chat-hf tokenizer_config.json.</summary>
    public const string Llama2Chat = """{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}""";

    /// <summary>ChatML (e.g. Felladrin/Llama-68M-Chat-v1, teknium/OpenHermes).</summary>
    public const string ChatMl = """{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}""";

    /// <summary>mistralai/Mistral-7B-Instruct-v0.1 tokenizer_config.json.</summary>
    public const string Mistral = """{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}""";

    /// <summary>llava-hf/llava-v1.6-mistral-7b-hf chat_template.json (older revision, with its "<\\s>" typo).</summary>
    public const string LlavaNextMistral = """{% for message in messages %}{% if message['role'] == 'system' %}{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}{% elif message['role'] == 'user' %}{{ '[INST] ' }}{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}{{' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'][0]['text'] + '<\\s> '}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}""";

    static ChatMessage Text(string role, string text) => new(role, ChatContentPart.FromText(text));

    [Fact]
    public void LlavaHf_ImageAndQuestion()
    {
        var t = new ChatTemplate(LlavaHf);
        var s = t.Render([new ChatMessage("user", ChatContentPart.Image, ChatContentPart.FromText("What is shown?"))], addGenerationPrompt: true);
        Assert.Equal("USER: <image>\nWhat is shown? ASSISTANT:", s);
    }

    [Fact]
    public void LlavaHf_ImagesComeFirstEvenWhenListedAfterText()
    {
        var t = new ChatTemplate(LlavaHf);
        var s = t.Render([new ChatMessage("user", ChatContentPart.FromText("Describe."), ChatContentPart.Image)], addGenerationPrompt: true);
        Assert.Equal("USER: <image>\nDescribe. ASSISTANT:", s);
    }

    [Fact]
    public void LlavaHf_MultiTurnWithSystemAndNoGenerationPrompt()
    {
        var t = new ChatTemplate(LlavaHf);
        var msgs = new[]
        {
            Text("system", "Be brief."),
            new ChatMessage("user", ChatContentPart.Image, ChatContentPart.FromText("Q1")),
            Text("assistant", "A1"),
            Text("user", "Q2"),
        };
        Assert.Equal("Be brief. USER: <image>\nQ1 ASSISTANT: A1 USER: Q2 ", t.Render(msgs, addGenerationPrompt: false));
        Assert.Equal("Be brief. USER: <image>\nQ1 ASSISTANT: A1 USER: Q2 ASSISTANT:", t.Render(msgs, addGenerationPrompt: true));
    }

    [Fact]
    public void LlavaHf_PlainTextContentRendersNoText()
    {
        // Plain-string content: selectattr over a string's characters finds no 'type' → only the role is printed,
        // as in transformers.
        var t = new ChatTemplate(LlavaHf);
        Assert.Equal("USER: ASSISTANT:", t.Render([new ChatMessage("user", "Hi")], addGenerationPrompt: true));
    }

    [Fact]
    public void Llama2Chat_SystemIsFoldedIntoFirstUserTurn()
    {
        var t = new ChatTemplate(Llama2Chat, "<s>", "</s>");
        var msgs = new[]
        {
            new ChatMessage("system", "You are helpful."),
            new ChatMessage("user", "  Hi  "),
            new ChatMessage("assistant", "Hello!"),
            new ChatMessage("user", " Bye "),
        };
        // strip() applies to the whole folded content, so the user's leading spaces survive after <</SYS>>.
        Assert.Equal("<s>[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\n  Hi [/INST] Hello! </s><s>[INST] Bye [/INST]",
            t.Render(msgs, addGenerationPrompt: true));
    }

    [Fact]
    public void Llama2Chat_WithoutSystem()
    {
        var t = new ChatTemplate(Llama2Chat, "<s>", "</s>");
        Assert.Equal("<s>[INST] Hi [/INST]", t.Render([new ChatMessage("user", "Hi")], addGenerationPrompt: false));
    }

    [Fact]
    public void Llama2Chat_RaisesOnNonAlternatingRoles()
    {
        var t = new ChatTemplate(Llama2Chat, "<s>", "</s>");
        var ex = Assert.Throws<ChatTemplateException>(() =>
            t.Render([new ChatMessage("user", "a"), new ChatMessage("user", "b")], addGenerationPrompt: true));
        Assert.True(ex.RaisedByTemplate);
        Assert.Contains("Conversation roles must alternate user/assistant/user/assistant/...", ex.Message);
        Assert.Equal(1, ex.Line);
    }

    [Fact]
    public void ChatMl_Conversation()
    {
        var t = new ChatTemplate(ChatMl);
        var msgs = new[] { new ChatMessage("system", "S"), new ChatMessage("user", "U"), new ChatMessage("assistant", "A"), new ChatMessage("user", "U2") };
        Assert.Equal("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n",
            t.Render(msgs, addGenerationPrompt: true));
        Assert.Equal("<|im_start|>user\nU<|im_end|>\n", t.Render([new ChatMessage("user", "U")], addGenerationPrompt: false));
    }

    [Fact]
    public void Mistral_Conversation()
    {
        var t = new ChatTemplate(Mistral, "<s>", "</s>");
        var msgs = new[] { new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Hello"), new ChatMessage("user", "Bye") };
        Assert.Equal("<s>[INST] Hi [/INST]Hello</s> [INST] Bye [/INST]", t.Render(msgs, addGenerationPrompt: true));
    }

    [Fact]
    public void Mistral_RejectsSystemRole()
    {
        var t = new ChatTemplate(Mistral, "<s>", "</s>");
        var ex = Assert.Throws<ChatTemplateException>(() =>
            t.Render([new ChatMessage("user", "Hi"), new ChatMessage("system", "S")], addGenerationPrompt: true));
        Assert.True(ex.RaisedByTemplate);
        Assert.Contains("Only user and assistant roles are supported!", ex.Message);
    }

    [Fact]
    public void LlavaNextMistral_Conversation()
    {
        var t = new ChatTemplate(LlavaNextMistral, "<s>", "</s>");
        var msgs = new[]
        {
            new ChatMessage("user", ChatContentPart.Image, ChatContentPart.FromText("What?")),
            Text("assistant", "A cat."),
            Text("user", "Sure?"),
        };
        Assert.Equal("[INST] <image>\nWhat? [/INST] A cat.<\\s> [INST] Sure? [/INST]", t.Render(msgs, addGenerationPrompt: true));
    }

    [Fact]
    public void ExtrasOverrideAndAdd()
    {
        var t = new ChatTemplate("{{ bos_token }}|{{ eos_token }}|{{ date }}|{{ messages | length }}");
        Assert.Equal("<s>|END|2024|0", t.Render([], false, new Dictionary<string, object?> { ["eos_token"] = "END", ["date"] = 2024 }));
    }
}
