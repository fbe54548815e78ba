using Llava.Text;

namespace Llava.Cli;

/// <summary>
/// How a conversation becomes prompt text: one of LLaVA's conversation templates, or the checkpoint's own Hugging Face
/// chat template (--conv-mode chat_template). Both re-render the whole history each turn, as LLaVA's CLI does.
/// </summary>
internal abstract class PromptFormat
{
    protected readonly List<(bool User, string Text, bool Image)> Turns = new();

    public abstract string Name { get; }
    public abstract string UserLabel { get; }
    public abstract string AssistantLabel { get; }
    /// <summary>Text that ends an answer besides EOS.</summary>
    public abstract IReadOnlyList<string> StopStrings { get; }
    public abstract PromptFormat Fresh();
    /// <summary>The prompt for the next answer (history + pending assistant turn), with literal &lt;image&gt; markers.</summary>
    public abstract string Render();

    public void AddUser(string text, bool hasImage) => Turns.Add((true, text, hasImage));
    public void AddAnswer(string text) => Turns.Add((false, text, false));

    public string SingleTurn(string question, bool hasImage)
    {
        var f = Fresh();
        f.AddUser(question, hasImage);
        return f.Render();
    }
}

/// <summary>One of LLaVA's templates (llava/conversation.py): the image goes first in its turn as "&lt;image&gt;\n".</summary>
internal sealed class LlavaPromptFormat(string name, ConversationTemplate template) : PromptFormat
{
    public override string Name => name;
    public override string UserLabel => template.Roles[0];
    public override string AssistantLabel => template.Roles[1];
    public override IReadOnlyList<string> StopStrings => template.StopString is { Length: > 0 } s ? [s] : [];
    public override PromptFormat Fresh() => new LlavaPromptFormat(name, template);

    public override string Render()
    {
        var conv = template.NewConversation();
        foreach (var (user, text, image) in Turns)
            conv.AppendMessage(user ? template.Roles[0] : template.Roles[1], image ? "<image>\n" + text : text);
        conv.AppendMessage(template.Roles[1], null);
        return conv.GetPrompt();
    }
}

/// <summary>The checkpoint's Jinja chat template, rendered as transformers' apply_chat_template does.</summary>
internal sealed class HfPromptFormat(ChatTemplate template) : PromptFormat
{
    public override string Name => "chat_template";
    public override string UserLabel => "USER";
    public override string AssistantLabel => "ASSISTANT";
    public override IReadOnlyList<string> StopStrings => [];
    public override PromptFormat Fresh() => new HfPromptFormat(template);

    public override string Render()
    {
        var messages = Turns.Select(t => t.User
            ? new ChatMessage("user", t.Image ? [ChatContentPart.Image, ChatContentPart.FromText(t.Text)] : [ChatContentPart.FromText(t.Text)])
            : new ChatMessage("assistant", [ChatContentPart.FromText(t.Text)])).ToList();
        string text = template.Render(messages, addGenerationPrompt: true);
        // Our tokenizer adds BOS itself; a template that spells it out would double it (transformers tokenizes the
        // rendered text without special tokens for the same reason).
        if (template.BosToken is { Length: > 0 } bos && text.StartsWith(bos, StringComparison.Ordinal)) text = text[bos.Length..];
        return text;
    }
}
