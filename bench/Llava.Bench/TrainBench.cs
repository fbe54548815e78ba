using System.Diagnostics;
using Llava.Models.Llava;
using Llava.Training.Model;
using Llava.Training.Optim;
using Llava.Training.Recipe;

namespace Llava.Bench;

/// <summary>
/// One optimizer step (zero grads → forward/backward over a batch → clip → AdamW) on the tiny fixture checkpoint and the
/// micro LLaVA (<see cref="MicroLlavaFactory"/>, random weights), for stage 2 (finetune), LoRA and QLoRA (4-bit base).
/// Reports tokens/s (expanded positions, image rows included) and the achieved GFLOP/s of the model FLOPs
/// 6·N·T (N = LLaMA layer parameters, T = positions) + 6·V·H·S (the head on the S supervised rows): the vision tower's
/// forward, attention scores and the optimizer are not counted but are in the time. --model DIR benchmarks another
/// original-layout checkpoint instead of the tiny fixture.
/// </summary>
static class TrainBench
{
    public static void Run(BenchOptions o)
    {
        var work = Directory.CreateTempSubdirectory("llava-trainbench-").FullName;
        try
        {
            string tiny = o.Model ?? MicroLlavaFactory.FindBundledTokenizer()
                ?? throw new DirectoryNotFoundException("tests/fixtures/llava-tiny not found; pass --model DIR");
            var micro = MicroLlavaFactory.Create(work, MicroLlavaConfig.Default, seed: 1);
            Console.WriteLine($"{"model",-8} {"mode",-9} {"batch",5} {"positions",9} {"superv.",7} {"fwd+bwd s",9} {"optim s",8} {"step s",8} {"tokens/s",9} {"GFLOP/s",8}");
            foreach (var (name, dir) in new[] { (o.Model is null ? "tiny" : "model", tiny), ("micro", micro.ModelDirectory) })
                foreach (var mode in new[] { "finetune", "lora", "qlora-4" })
                    Step(name, dir, mode, o.Runs);
        }
        finally
        {
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    static void Step(string name, string dir, string mode, int runs)
    {
        using var frozen = LlavaModel.Load(dir);
        var c = frozen.Config.Text;
        using var model = new TrainableLlava(frozen, mode == "finetune" ? TrainingMode.Finetune : TrainingMode.Lora,
            new LoraOptions(64, 128, 0), seed: 1, baseBits: mode == "qlora-4" ? 4 : null);
        var batch = Batch(frozen, examples: 4, textTokens: 128);
        var opt = new AdamW(ParameterGroup.ForLlava(model.Parameters, 0, null));

        int supervised = 0;
        (double Step, double Fb, double Optim) Once()
        {
            var sw = Stopwatch.StartNew();
            model.ZeroGrad();
            model.ForwardBackward(batch, out supervised);
            double fb = sw.Elapsed.TotalSeconds;
            GradientClipping.ClipByGlobalNorm(model.Parameters, 1.0);
            opt.Step(1e-5);
            double total = sw.Elapsed.TotalSeconds;
            return (total, fb, total - fb);
        }
        Once();   // warm-up
        var times = Enumerable.Range(0, runs).Select(_ => Once()).OrderBy(t => t.Step).ToArray();
        var (step, fb, optim) = times[runs / 2];   // the median step, with its split
        int positions = batch.Sum(e => e.InputIds.Length - 1 + (e.PixelValues is null ? 0 : frozen.Config.NumImageTokens));
        long h = c.HiddenSize, qd = c.NumHeads * c.HeadDim, kvd = c.NumKvHeads * c.HeadDim, ff = c.IntermediateSize;
        long layerParams = c.NumLayers * (h * qd + 2 * h * kvd + qd * h + 3 * h * ff);
        double flops = 6.0 * layerParams * positions + 6.0 * c.VocabSize * h * supervised;
        Console.WriteLine($"{name,-8} {mode,-9} {batch.Count,5} {positions,9} {supervised,7} {fb,9:F3} {optim,8:F3} {step,8:F3} {positions / step,9:F0} {flops / step / 1e9,8:F2}");
        if (model.BaseBits is int bits)
            Console.WriteLine($"{"",-8} {"",-9} frozen LLaMA linears: {model.FrozenBaseBytes / 1048576.0:F2} MiB at {bits} bits (stored {model.FrozenBaseSourceBytes / 1048576.0:F2} MiB)");
    }

    /// <summary>Examples of [image + text]: BOS, the image placeholder, text tokens; the second half of the text supervised.</summary>
    static List<TrainingExample> Batch(LlavaModel frozen, int examples, int textTokens)
    {
        var rng = new Random(7);
        int s = frozen.Config.Vision.ImageSize;
        var list = new List<TrainingExample>();
        for (int e = 0; e < examples; e++)
        {
            var ids = new List<int> { 1, LlavaConfig.OriginalImageTokenIndex };
            for (int i = 0; i < textTokens; i++) ids.Add(rng.Next(100, 31000));
            var labels = ids.Select((id, i) => i >= 2 + textTokens / 2 ? id : -100).ToArray();
            var pixels = new float[3 * s * s];
            for (int i = 0; i < pixels.Length; i++) pixels[i] = (float)(rng.NextDouble() * 2 - 1);
            list.Add(new TrainingExample(ids.ToArray(), labels, pixels));
        }
        return list;
    }
}
