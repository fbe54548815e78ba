using Llava.Formats;
using Llava.Vision;
using Spectre.Console;

namespace Llava.Cli;

/// <summary>Turns expected failures (bad files, bad options, bad images) into one clear line and exit code 1.</summary>
internal static class Cli
{
    public static int Guard(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (e is CliException or ModelFormatException or ImageDecodeException or ArgumentException
                                    or Llava.Models.Llama.ContextOverflowException or FileNotFoundException or DirectoryNotFoundException
                                    or KeyNotFoundException)
        {
            ModelLoading.Err.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            ModelLoading.Err.MarkupLine("[grey]cancelled[/]");
            return 130;
        }
    }
}
