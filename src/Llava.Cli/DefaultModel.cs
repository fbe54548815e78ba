namespace Llava.Cli;

/// <summary>
/// The model used when --model is not given: the project's own bundled model (models/llava-micro, trained by
/// `llava recipe micro`), searched for above the working directory and the executable; failing that, the tiny
/// random-weight test fixture.
/// </summary>
internal static class DefaultModel
{
    static readonly string[] Candidates = [Path.Combine("models", "llava-micro"), Path.Combine("tests", "fixtures", "llava-tiny", "hf")];

    public static string? Find()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
                foreach (var c in Candidates)
                {
                    var p = Path.Combine(dir.FullName, c);
                    if (File.Exists(Path.Combine(p, "config.json"))) return p;
                }
        return null;
    }
}
