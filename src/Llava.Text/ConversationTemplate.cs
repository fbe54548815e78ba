namespace Llava.Text;

/// <summary>
/// An immutable conversation template, field for field LLaVA's <c>Conversation</c> dataclass
/// (llava/conversation.py). Use <see cref="NewConversation"/> to start a conversation from it and
/// <c>with</c> expressions to customise it (e.g. another system prompt).
/// </summary>
public sealed record ConversationTemplate
{
    public required string System { get; init; }
    /// <summary>The two roles: user first, assistant second.</summary>
    public required IReadOnlyList<string> Roles { get; init; }
    /// <summary>Few-shot messages that every conversation starts with.</summary>
    public IReadOnlyList<ConversationMessage> Messages { get; init; } = [];
    /// <summary>Number of leading few-shot messages that are not part of the visible chat.</summary>
    public int Offset { get; init; }
    public SeparatorStyle Style { get; init; } = SeparatorStyle.Single;
    public string Sep { get; init; } = "###";
    public string? Sep2 { get; init; }
    public string Version { get; init; } = "Unknown";

    public string UserRole => Roles[0];
    public string AssistantRole => Roles[1];

    /// <summary>
    /// Text that ends an assistant turn, as LLaVA's web server uses it: <see cref="Sep"/> for
    /// <see cref="SeparatorStyle.Single"/>/<see cref="SeparatorStyle.Mpt"/>, otherwise <see cref="Sep2"/>
    /// (null for <see cref="SeparatorStyle.Plain"/>, whose sep2 is unset).
    /// </summary>
    public string? StopString => Style is SeparatorStyle.Single or SeparatorStyle.Mpt ? Sep : Sep2;

    /// <summary>An equal copy (templates are immutable, so this only exists for parity with LLaVA's <c>copy()</c>).</summary>
    public ConversationTemplate Copy() => this with { };

    /// <summary>Starts a conversation holding this template's few-shot messages.</summary>
    public Conversation NewConversation() => new(this);
}
