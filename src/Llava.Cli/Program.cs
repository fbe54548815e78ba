using System.CommandLine;
using Llava.Cli;

if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 4096;
var root = new RootCommand("llava: LLaVA (CLIP + projector + LLaMA) in .NET: chat about images, inspect and dump checkpoints.");
root.Subcommands.Add(ChatCommand.Create());
root.Subcommands.Add(DumpCommand.Create());
root.Subcommands.Add(InfoCommand.Create());
return await root.Parse(args).InvokeAsync();
