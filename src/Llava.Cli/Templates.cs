using Llava.Models.Llava;
using Llava.Text;
using Spectre.Console;

namespace Llava.Cli;

/// <summary>Picks the conversation template: --conv-mode if given, else from the model name.</summary>
internal static class Templates
{
    /// <summary>
    /// The template for a checkpoint: ConversationTemplates.AutoSelect on its name (vicuna_v1 for v1/1.5 names).
    /// LLaVA falls back to llava_v0 for any other name because its untagged names were v0 models; a checkpoint with
    /// an MLP projector is LLaVA-1.5-style (v0 used a linear one), so it gets vicuna_v1, its training template,
    /// unless its name says v0.
    /// </summary>
    public static string Auto(LlavaModel model)
    {
        string name = model.Config.ModelName;
        string auto = ConversationTemplates.AutoSelect(name);
        if (auto == "llava_v0" && !name.Contains("v0", StringComparison.OrdinalIgnoreCase) && model.Config.ProjectorType.StartsWith("mlp"))
            return "vicuna_v1";
        return auto;
    }

    public static PromptFormat Choose(LlavaModel model, string? convMode, bool warn)
    {
        if (convMode is "chat_template" or "hf")
        {
            var t = Llava.Text.ChatTemplate.FromDirectory(model.Config.ModelDirectory)
                ?? throw new CliException($"--conv-mode {convMode}: {model.Config.ModelDirectory} has no chat template (tokenizer_config.json chat_template, chat_template.json or chat_template.jinja)");
            return new HfPromptFormat(t);
        }
        string auto = Auto(model);
        if (convMode is null) return new LlavaPromptFormat(auto, ConversationTemplates.Get(auto));
        if (!ConversationTemplates.Names.Contains(convMode))
            throw new CliException($"unknown --conv-mode '{convMode}'; known: {string.Join(", ", ConversationTemplates.Names)}, chat_template");
        if (warn && convMode != auto)
            ModelLoading.Err.MarkupLine($"[yellow]note:[/] the auto-selected template is {auto}, using --conv-mode {Markup.Escape(convMode)}");
        return new LlavaPromptFormat(convMode, ConversationTemplates.Get(convMode));
    }
}
