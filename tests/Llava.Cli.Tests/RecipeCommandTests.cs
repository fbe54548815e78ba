using System.Text.Json;

namespace Llava.Tests;

/// <summary>`llava recipe micro --smoke`: every stage, the llava-hf export and the evaluation, end to end (a few steps each).</summary>
public sealed class RecipeCommandTests(ITestOutputHelper output)
{
    [Fact]
    public void Smoke_recipe_trains_exports_a_loadable_model_and_scores_it()
    {
        using var dir = new TempDir();
        string work = Path.Combine(dir.Path, "work"), model = Path.Combine(dir.Path, "llava-micro");
        var r = LlavaProcess.Run("recipe", "micro", "--smoke", "--work-dir", work, "-o", model, "--eval-limit", "7");
        output.WriteLine(r.Stderr);
        Assert.True(r.ExitCode == 0, r.Stderr);
        foreach (var stage in new[] { "init", "data", "vision", "text", "stage1", "stage2" })
            Assert.True(File.Exists(Path.Combine(work, stage, "DONE")), stage);
        Assert.Matches(@"all\s+7\s", r.Stdout);   // the per-type table over the 7 questions

        // The export is one llava-hf directory within the 25 MB budget of the shipped model.
        using (var cfg = JsonDocument.Parse(File.ReadAllText(Path.Combine(model, "config.json"))))
            Assert.Equal("llava", cfg.RootElement.GetProperty("model_type").GetString());
        long bytes = Directory.EnumerateFiles(model).Sum(f => new FileInfo(f).Length);
        Assert.InRange(bytes, 20_000_000, 25_000_000);
        Assert.False(Directory.Exists(model + ".partial"));

        // It chats like any checkpoint.
        string image = Directory.EnumerateFiles(Path.Combine(work, "data", "images", "heldout")).First();
        var chat = LlavaProcess.Run("chat", "--model", model, "--image", image, "--prompt", "What color is the circle?", "--max-new-tokens", "4");
        Assert.True(chat.ExitCode == 0, chat.Stderr);

        // A rerun reuses the finished stages.
        var again = LlavaProcess.Run("recipe", "micro", "--smoke", "--work-dir", work, "--stop-after", "stage1");
        Assert.True(again.ExitCode == 0, again.Stderr);
        Assert.Contains("vision: reused", again.Stderr);
    }
}
