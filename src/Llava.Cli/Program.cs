using System.CommandLine;
using Llava.Cli;
using Spectre.Console;


// Piped or redirected output (scripts, logs): plain text, no colours, no wrapping at 80 columns.
if (Console.IsOutputRedirected || Environment.GetEnvironmentVariable("NO_COLOR") is { Length: > 0 })
{
    AnsiConsole.Console = AnsiConsole.Create(new AnsiConsoleSettings { Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Out = new AnsiConsoleOutput(Console.Out) });
    AnsiConsole.Profile.Width = 4096;
}
var root = new RootCommand("llava: LLaVA (CLIP + projector + LLaMA) in .NET: chat about images, inspect and dump checkpoints.");
root.Subcommands.Add(ChatCommand.Create());
root.Subcommands.Add(DumpCommand.Create());
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(ConvertCommand.Create());
root.Subcommands.Add(DataCommand.Create());
root.Subcommands.Add(EvalCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(MergeLoraCommand.Create());
root.Subcommands.Add(RecipeCommand.Create());
// Ctrl-C during training saves a checkpoint first: give it time instead of the default 2 s.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromMinutes(5) });
