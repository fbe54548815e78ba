using Llava.Models.Llava;
using Llava.Text;
using Spectre.Console;

namespace Llava.Cli;

/// <summary>Picks the conversation template: --conv-mode if given, else from the model name.</summary>
internal static class Templates
{
    public static (string Name, ConversationTemplate Template) Choose(LlavaModel model, string? convMode, bool warn)
    {
        string auto = ConversationTemplates.AutoSelect(model.Config.ModelName);
        if (convMode is null) return (auto, ConversationTemplates.Get(auto));
        if (!ConversationTemplates.Names.Contains(convMode))
            throw new CliException($"unknown --conv-mode '{convMode}'; known: {string.Join(", ", ConversationTemplates.Names)}");
        if (warn && convMode != auto)
            ModelLoading.Err.MarkupLine($"[yellow]note:[/] the auto-selected template is {auto}, using --conv-mode {Markup.Escape(convMode)}");
        return (convMode, ConversationTemplates.Get(convMode));
    }
}
