using System.Text;

namespace Llava.Text;

/// <summary>
/// A conversation in progress: the template plus the appended turns. <see cref="GetPrompt"/> renders
/// exactly what LLaVA's <c>Conversation.get_prompt()</c> returns.
/// </summary>
public sealed class Conversation
{
    readonly List<ConversationMessage> messages;

    public ConversationTemplate Template { get; }
    public IReadOnlyList<ConversationMessage> Messages => messages;

    public Conversation(ConversationTemplate template)
    {
        Template = template;
        messages = [.. template.Messages];
    }

    /// <summary>Appends a turn; <paramref name="text"/> null means the role speaks next (generation point).</summary>
    public Conversation AppendMessage(string role, string? text) => AppendMessage(role, text, hasImage: false);

    /// <summary>Appends a turn; <paramref name="hasImage"/> makes it an image message (LLaVA's tuple message).</summary>
    public Conversation AppendMessage(string role, string? text, bool hasImage)
    {
        if (hasImage && text == null) throw new ArgumentNullException(nameof(text), "An image message needs text (may be empty).");
        messages.Add(new ConversationMessage(role, text, hasImage));
        return this;
    }

    /// <summary>Replaces the text of the last turn (e.g. to store the generated answer).</summary>
    public void SetLastMessageText(string? text)
    {
        if (messages.Count == 0) throw new InvalidOperationException("The conversation has no messages.");
        messages[^1] = messages[^1] with { Text = text };
    }

    /// <summary>A copy with its own message list.</summary>
    public Conversation Copy()
    {
        var c = new Conversation(Template);
        c.messages.Clear();
        c.messages.AddRange(messages);
        return c;
    }

    /// <summary>The prompt text, rendered like LLaVA's <c>get_prompt()</c>.</summary>
    public string GetPrompt()
    {
        var t = Template;
        // (role, text, truthy): Python's "if message:" is true for any tuple message, else for non-empty text.
        var msgs = messages.Select(m => (m.Role, Text: m.Text ?? "", Truthy: m.HasImage || !string.IsNullOrEmpty(m.Text))).ToList();
        if (msgs.Count > 0 && messages[0].HasImage)
        {
            var (role, text, _) = msgs[0];
            string init = PythonText.Strip(text.Replace(LlamaTokenizer.ImageToken, ""));
            if (t.Version.Contains("mmtag", StringComparison.Ordinal))
            {
                msgs[0] = (role, init, init.Length > 0);
                msgs.Insert(0, (t.Roles[0], "<Image><image></Image>", true));
                msgs.Insert(1, (t.Roles[1], "Received.", true));
            }
            else msgs[0] = (role, LlamaTokenizer.ImageToken + "\n" + init, true);
        }

        var ret = new StringBuilder();
        switch (t.Style)
        {
            case SeparatorStyle.Single:
                ret.Append(t.System).Append(t.Sep);
                foreach (var (role, text, truthy) in msgs)
                {
                    if (truthy) ret.Append(role).Append(": ").Append(text).Append(t.Sep);
                    else ret.Append(role).Append(':');
                }
                break;
            case SeparatorStyle.Two:
                ret.Append(t.System).Append(t.Sep);
                for (int i = 0; i < msgs.Count; i++)
                {
                    var (role, text, truthy) = msgs[i];
                    if (truthy) ret.Append(role).Append(": ").Append(text).Append(Separator(i));
                    else ret.Append(role).Append(':');
                }
                break;
            case SeparatorStyle.Mpt:
                ret.Append(t.System).Append(t.Sep);
                foreach (var (role, text, truthy) in msgs)
                {
                    if (truthy) ret.Append(role).Append(text).Append(t.Sep);
                    else ret.Append(role);
                }
                break;
            case SeparatorStyle.Llama2:
                for (int i = 0; i < msgs.Count; i++)
                {
                    var (role, text, truthy) = msgs[i];
                    if (i == 0)
                    {
                        if (!truthy) throw new InvalidOperationException("first message should not be none");
                        if (role != t.Roles[0]) throw new InvalidOperationException("first message should come from user");
                    }
                    if (!truthy) continue;
                    if (i == 0) text = WrapSystem(t.System) + text;
                    if (i % 2 == 0) ret.Append(t.Sep).Append("[INST] ").Append(text).Append(" [/INST]");
                    else ret.Append(' ').Append(text).Append(' ').Append(t.Sep2 ?? throw NoSep2());
                }
                // Python's str.lstrip(sep) strips any of sep's characters, not the prefix.
                return PythonText.LStrip(ret.ToString(), t.Sep);
            case SeparatorStyle.Plain:
                ret.Append(t.System);
                for (int i = 0; i < msgs.Count; i++)
                {
                    var (_, text, truthy) = msgs[i];
                    if (truthy) ret.Append(text).Append(Separator(i));
                }
                break;
            default:
                throw new InvalidOperationException($"Invalid style: {t.Style}");
        }
        return ret.ToString();

        string Separator(int i) => i % 2 == 0 ? t.Sep : t.Sep2 ?? throw NoSep2();
        static string WrapSystem(string msg) => msg.Length > 0 ? $"<<SYS>>\n{msg}\n<</SYS>>\n\n" : msg;
    }

    /// <summary>LLaVA concatenates None here and fails with a TypeError; we fail the same way, explicitly.</summary>
    static InvalidOperationException NoSep2() =>
        new("This template has no sep2, so LLaVA's get_prompt() cannot render an assistant answer with it (Python raises TypeError).");
}
