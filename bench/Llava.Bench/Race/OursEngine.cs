using System.Diagnostics;
using Llava.Generation;
using Llava.Models.Llama;
using Llava.Models.Llava;
using Llava.Tensors;
using Llava.Vision;

namespace Llava.Bench.Race;

/// <summary>This engine on the race's GGUF pair, as `llava chat --model X.gguf --mmproj Y.gguf` runs it.</summary>
static class OursEngine
{
    public static EngineResult Run(string text, string mmproj, int threads, int runs)
    {
        Workers.SetThreadCount(threads);
        var sw = Stopwatch.StartNew();
        using var model = LlavaModel.Load(text, new LlavaLoadOptions { Mmproj = mmproj });
        double load = sw.Elapsed.TotalSeconds;
        Console.Error.WriteLine($"  [ours] loaded in {load:F2} s");
        // As LlamaCppEngine: context Workload.ContextSize, f16 K and V (llama.cpp's default cache type).
        using var session = new LlavaSession(model, Workload.ContextSize, KvCacheType.F16);
        var ids = Workload.PromptIds();

        var prefill = Workload.Runs(runs, () =>
        {
            session.Reset();
            return Workload.Time(() => session.Prefill(ids, []));
        }, "[ours] prefill 512");

        var decode = Workload.Runs(runs, () =>
        {
            session.Reset();
            session.Prefill(ids, []);
            int tok = Workload.ArgMax(session.LastLogits);
            return Workload.Time(() =>
            {
                for (int i = 0; i < Workload.DecodeTokens; i++)
                {
                    session.Step(tok);
                    tok = Workload.ArgMax(session.LastLogits);
                }
            });
        }, "[ours] decode 128");

        var rgb = Workload.ImageRgb();
        var image = new RgbImage(RaceShape.ImageSize, RaceShape.ImageSize);
        rgb.CopyTo(image.Pixels, 0);
        var pixels = model.PreprocessImage(image);
        var encode = Workload.Runs(runs, () => Workload.Time(() => model.EncodeImage(pixels)), "[ours] image encode");

        string prompt = Workload.LlavaPrompt("<image>");
        int positions = 0;
        var ttft = Workload.Runs(runs, () =>
        {
            session.Reset();
            return Workload.Time(() =>
            {
                var features = session.AddImageFeatures(model.EncodeImage(model.PreprocessImage(image)));
                var promptIds = session.Tokenize(prompt);
                var logits = session.Prefill(promptIds, [features]);
                Workload.ArgMax(logits);
                positions = session.Position;
            });
        }, "[ours] ttft", warmup: false);

        return new EngineResult
        {
            Engine = "ours",
            Threads = threads,
            LoadSeconds = load,
            PrefillSeconds = prefill,
            DecodeSeconds = decode,
            ImageSeconds = encode,
            TtftSeconds = ttft,
            TtftPositions = positions,
            PeakRssMiB = Workload.PeakRssMiB(),
            Notes = "f16 KV cache (2048 positions, as llama.cpp); decode after the 512-token prompt; image = EncodeImage on preprocessed pixels",
        };
    }
}
