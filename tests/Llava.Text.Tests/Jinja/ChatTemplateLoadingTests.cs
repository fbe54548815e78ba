namespace Llava.Text.Tests.Jinja;

public sealed class ChatTemplateLoadingTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("llava-chat-template-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    void Write(string name, string text) => File.WriteAllText(Path.Combine(dir, name), text);

    static readonly ChatMessage[] Hi = [new("user", "Hi")];

    [Fact]
    public void NoTemplateGivesNull()
    {
        Write("tokenizer_config.json", """{"bos_token": "<s>"}""");
        Assert.Null(ChatTemplate.FromDirectory(dir));
    }

    [Fact]
    public void StringTemplateFromTokenizerConfigUsesItsSpecialTokens()
    {
        Write("tokenizer_config.json", """{"bos_token": "<B>", "eos_token": {"content": "<E>", "lstrip": false}, "chat_template": "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}{{ eos_token }}"}""");
        var t = ChatTemplate.FromDirectory(dir)!;
        Assert.Equal("<B>Hi<E>", t.Render(Hi, false));
        Assert.EndsWith("tokenizer_config.json", t.Origin);
    }

    [Fact]
    public void NamedTemplateListPicksDefault()
    {
        Write("tokenizer_config.json", """{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ messages | length }}"}]}""");
        Assert.Equal("D1", ChatTemplate.FromDirectory(dir)!.Render(Hi, false));
        Assert.Equal("T", ChatTemplate.FromDirectory(dir, "tool_use")!.Render(Hi, false));
    }

    [Fact]
    public void NamedTemplateListWithoutDefaultIsAnError()
    {
        Write("tokenizer_config.json", """{"chat_template": [{"name": "tool_use", "template": "T"}]}""");
        Assert.Contains("'tool_use'", Assert.Throws<ChatTemplateException>(() => ChatTemplate.FromDirectory(dir)).Message);
    }

    [Fact]
    public void ProcessorTemplateFilesWinOverTokenizerConfig()
    {
        Write("tokenizer_config.json", """{"chat_template": "from-config"}""");
        Assert.Equal("from-config", ChatTemplate.FromDirectory(dir)!.Render(Hi, false));
        Write("chat_template.json", """{"chat_template": "from-json"}""");
        Assert.Equal("from-json", ChatTemplate.FromDirectory(dir)!.Render(Hi, false));
        Write("chat_template.jinja", "from-jinja\n");
        Assert.Equal("from-jinja\n", ChatTemplate.FromDirectory(dir)!.Render(Hi, false));
    }

    [Fact]
    public void LlavaHfChatTemplateJson()
    {
        var json = System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string> { ["chat_template"] = RealTemplateTests.LlavaHf });
        Write("chat_template.json", json);
        var t = ChatTemplate.FromDirectory(dir)!;
        Assert.Equal("USER: <image>\nWhat is shown? ASSISTANT:",
            t.Render([new ChatMessage("user", ChatContentPart.Image, ChatContentPart.FromText("What is shown?"))], true));
    }

    [Fact]
    public void SyntaxErrorInCheckpointTemplateSurfacesOnLoad()
    {
        Write("chat_template.jinja", "{% if %}");
        Assert.Throws<ChatTemplateException>(() => ChatTemplate.FromDirectory(dir));
    }
}
