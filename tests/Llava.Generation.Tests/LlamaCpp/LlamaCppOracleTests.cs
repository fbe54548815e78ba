using Llava.Formats.Gguf;
using Llava.Generation;
using Llava.Models.Gguf;
using Llava.Models.Llava;
using Llava.Tensors;

namespace Llava.Tests.LlamaCpp;

/// <summary>
/// Our engine against llama.cpp on the SAME GGUF files: random-weight LLaMAs of several shapes written in every tensor
/// type llama.cpp and we both run. llama.cpp decodes greedily for 32 steps; our engine is fed llama.cpp's tokens
/// (teacher forcing), so at each step both have seen the same context and their logits are directly comparable;
/// equal top-1 at every step means identical greedy continuations.
/// </summary>
public sealed class LlamaCppOracleTests(SyntheticGgufModels models, ITestOutputHelper output) : IClassFixture<SyntheticGgufModels>
{
    const int Steps = 32;

    public static IEnumerable<object[]> Cases()
    {
        foreach (var s in new[] { SyntheticShape.Mha256, SyntheticShape.Gqa512, SyntheticShape.Hd128 })
            foreach (var t in new[] { GgufOutputType.F32, GgufOutputType.F16, GgufOutputType.Q8_0, GgufOutputType.Q4_0, GgufOutputType.Q4_1,
                         GgufOutputType.Q5_0, GgufOutputType.Q5_1, GgufOutputType.Q4_K, GgufOutputType.Q5_K, GgufOutputType.Q6_K })
                yield return [s.Name, t];
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void OurEngine_MatchesLlamaCpp_OnTheSameGguf(string shapeName, GgufOutputType type)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var shape = SyntheticShape.ByName(shapeName);
        var (text, mmproj) = models.Gguf(shape, type);
        var exportTime = sw.Elapsed;
        using (var f = GgufFile.Open(text))
        {
            var want = type.BaseType();
            foreach (var t in f.Tensors.Where(t => t.Dimensions.Length == 2))
                Assert.True(t.Type == want, $"{t.Name} is {t.Type}, expected {want}");
        }

        var prompt = models.Prompt;
        var (tokens, lc) = LlamaCppRunner.GreedyRun(text, prompt, Steps);
        var llamaTime = sw.Elapsed - exportTime;

        using var model = LlavaModel.Load(text, new LlavaLoadOptions { Mmproj = mmproj });
        var session = new LlavaSession(model, 64);
        var ours = new float[Steps][];
        ours[0] = session.Prefill(prompt, [], 1);
        for (int s = 1; s < Steps; s++)
        {
            session.Step(tokens[s - 1]);
            ours[s] = session.LastLogits.ToArray();
        }
        var oursTime = sw.Elapsed - exportTime - llamaTime;

        var rel = new double[Steps];
        var maxAbs = new double[Steps];
        var gap = new double[Steps];
        var rms = new double[Steps];
        for (int s = 0; s < Steps; s++)
        {
            rel[s] = Stats.Rel(ours[s], lc[s]);
            maxAbs[s] = Stats.MaxAbs(ours[s], lc[s]);
            gap[s] = Stats.Gap(lc[s]);
            rms[s] = Math.Sqrt(lc[s].Average(x => (double)x * x));
        }
        output.WriteLine($"{shape} {type}: export {exportTime.TotalSeconds:F2}s, llama.cpp {llamaTime.TotalSeconds:F2}s, ours {oursTime.TotalSeconds:F2}s");
        output.WriteLine($"  rel err: prompt {rel[0]:E2}, max over steps {rel.Max():E2}, mean {rel.Average():E2}");
        output.WriteLine($"  max|Δ|/rms(logits): max {maxAbs.Zip(rms, (a, b) => a / b).Max():E2}; gap/rms: min {gap.Zip(rms, (a, b) => a / b).Min():E2}");
        int agree = 0;
        while (agree < Steps && Stats.ArgMax(ours[agree]) == tokens[agree]) agree++;
        output.WriteLine($"  top-1 agrees for {agree}/{Steps} steps");
        output.WriteLine($"  rel   {string.Join(" ", rel.Select(x => x.ToString("E1")))}");
        output.WriteLine($"  gap   {string.Join(" ", gap.Select(x => x.ToString("F3")))}");
        output.WriteLine($"  maxΔ  {string.Join(" ", maxAbs.Select(x => x.ToString("F3")))}");
    }
}
