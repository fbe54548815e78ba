namespace Llava.Tests;

/// <summary>Locates the reference fixtures copied into <c>tests/fixtures</c>.</summary>
public static class Fixtures
{
    static readonly Lazy<string> root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "fixtures");
            if (Directory.Exists(Path.Combine(candidate, "llava-tiny"))) return candidate;
        }
        throw new DirectoryNotFoundException("tests/fixtures not found above " + AppContext.BaseDirectory);
    });

    /// <summary>tests/fixtures</summary>
    public static string Root => root.Value;
    /// <summary>tests/fixtures/llava-tiny</summary>
    public static string Tiny => Path.Combine(Root, "llava-tiny");
    public static string TinyPath(params string[] parts) => Path.Combine([Tiny, .. parts]);
}
