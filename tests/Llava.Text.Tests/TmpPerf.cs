using System.Diagnostics;
namespace Llava.Text.Tests;
public class TmpPerf
{
    [Fact]
    public void Measure()
    {
        var hf = TokenizerFixtures.Hf;
        var sb = new System.Text.StringBuilder();
        var rng = new Random(5);
        string[] words = ["the", "image", "shows", "a", "man", "ironing", "clothes", "on", "the", "back", "of", "a", "yellow", "taxi", "🙂", "中文", "\n", "1234", "—", "naïve"];
        while (sb.Length < 2000) sb.Append(words[rng.Next(words.Length)]).Append(' ');
        var text = sb.ToString()[..2000];
        var norm = hf.Model.Normalize(text, false);
        var ids = new List<int>();
        for (int i = 0; i < 20; i++) { ids.Clear(); hf.Model.EncodeNormalized(norm, ids); }
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 50; i++) { ids.Clear(); hf.Model.EncodeNormalized(norm, ids); }
        Console.WriteLine($"BPE {sw.Elapsed.TotalMilliseconds / 50:F2} ms, {ids.Count} ids");
        sw.Restart();
        for (int i = 0; i < 50; i++) hf.Encode(text);
        Console.WriteLine($"Encode {sw.Elapsed.TotalMilliseconds / 50:F2} ms");
        sw.Restart();
        for (int i = 0; i < 50; i++) hf.Model.Normalize(text, false);
        Console.WriteLine($"Normalize {sw.Elapsed.TotalMilliseconds / 50:F3} ms");
    }
}
