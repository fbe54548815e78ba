using Llava.Models.Llava;
using Llava.Training.Data;
using Llava.Training.Model;
using Llava.Tests;
using Llava.Training.Tests.Data;
using Llava.Training.Trainer;

namespace Llava.Training.Tests.Model;

/// <summary>
/// Packing several examples into one pass (one GEMM per linear over all their rows, attention within each example) gives
/// the losses and gradients of running them one at a time; so does a pack budget that splits the batch.
/// </summary>
public sealed class PackingTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(TrainingMode.Finetune)]
    [InlineData(TrainingMode.Pretrain)]
    [InlineData(TrainingMode.Lora)]
    public void PackedBatch_EqualsOneExampleAtATime(TrainingMode mode)
    {
        using var frozen = LlavaModel.Load(Fixtures.TinyPath("original", "llava-v1.5-tiny"));
        using var model = new TrainableLlava(frozen, mode, new LoraOptions(4, 8, 0), seed: 3);
        if (mode == TrainingMode.Lora)   // B starts at zero: give it values so the LoRA path carries gradient into A
            foreach (var a in model.LoraAdapters()) for (int i = 0; i < a.B.Data.Length; i++) a.B.Data[i] = 0.01f * MathF.Sin(i + 1);
        var ds = TrainFixtures.Load("finetune");
        var collator = DataCollator.For(ds);
        var ex = Enumerable.Range(0, Math.Min(4, ds.Count))
            .Select(i => LlavaTrainer.ToExamples(collator.Collate([ds.GetSample(i)]), frozen.Config.NumImageTokens, 2048)[0]).ToList();
        Assert.True(ex.Count >= 3);
        Assert.Contains(ex, e => e.PixelValues is not null);

        (double Loss, int Count, float[][] Grads) Run(int packPositions)
        {
            model.PackPositions = packPositions;
            model.ZeroGrad();
            var (loss, count) = model.ForwardBackward(ex, 0.01f);
            return (loss, count, model.Parameters.Select(p => p.Grad.ToArray()).ToArray());
        }
        var single = Run(1);           // every example alone
        var packed = Run(1 << 20);     // all in one pack
        int two = ex.Take(2).Sum(e => e.InputIds.Length + frozen.Config.NumImageTokens);
        var split = Run(two);          // the budget splits the batch into several packs

        Assert.True(single.Count > 0);
        foreach (var other in new[] { packed, split })
        {
            Assert.Equal(single.Count, other.Count);
            Assert.InRange(Math.Abs(other.Loss - single.Loss) / single.Loss, 0, 1e-6);
            for (int k = 0; k < single.Grads.Length; k++)
            {
                double err = Numerics.RelativeError(other.Grads[k], single.Grads[k]);
                Assert.True(err <= 1e-5, $"{model.Parameters[k].Name}: packed gradient differs by {err:E2} (relative)");
                Assert.Contains(single.Grads[k], g => g != 0);
            }
        }
        output.WriteLine($"{mode}: {ex.Count} examples, {single.Count} supervised, loss {single.Loss:F6} = {packed.Loss:F6} packed");
    }
}
