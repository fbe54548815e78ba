using Llava.Formats;
using Llava.Formats.Safetensors;
using Llava.Models.Llava;
using Llava.Training.Model;
using Llava.Training.Optim;

namespace Llava.Tests;

/// <summary>
/// Three optimizer steps of stage-2 training against LLaVA + torch: AdamW (lr 1e-3), cosine schedule with
/// warmup_ratio 0.03 (step 1 at lr 0), clip_grad_norm 1.0, batches (ft-0, ft-1), (ft-2, ft-3), (ft-0, ft-1).
/// </summary>
public sealed class TrajectoryTests(ITestOutputHelper output)
{
    [Fact]
    public void ThreeAdamWSteps_MatchTorchTrajectory()
    {
        using var frozen = LlavaModel.Load(Fixtures.TinyPath("original", "llava-v1.5-tiny"));
        using var model = new TrainableLlava(frozen, TrainingMode.Finetune);
        var examples = Enumerable.Range(0, 4).Select(i => GradientParityTests.LoadBatch($"finetune__ft-{i}", "finetune")[0]).ToArray();
        var traj = GradientParityTests.Reference.GetProperty("trajectory");
        var steps = traj.GetProperty("steps").EnumerateArray().ToArray();

        var opt = new AdamW([new ParameterGroup(model.Parameters, WeightDecay: 0)]);
        var schedule = LrSchedule.FromRatio(0.03, 3);
        int[][] batches = [[0, 1], [2, 3], [0, 1]];
        for (int s = 0; s < 3; s++)
        {
            model.ZeroGrad();
            double loss = model.ForwardBackward(batches[s].Select(i => examples[i]).ToList(), out _);
            double norm = GradientClipping.ClipByGlobalNorm(model.Parameters, 1.0);
            double factor = schedule.Factor(s);
            opt.Step(1e-3, factor);
            double refLoss = steps[s].GetProperty("loss").GetDouble(), refNorm = steps[s].GetProperty("grad_norm_before_clip").GetDouble();
            output.WriteLine($"step {s + 1}: loss {loss:F6} (ref {refLoss:F6}), grad norm {norm:F6} (ref {refNorm:F6}), lr {1e-3 * factor}");
            Assert.InRange(Math.Abs(loss - refLoss) / refLoss, 0, 1e-5);
            Assert.InRange(Math.Abs(norm - refNorm) / refNorm, 0, 1e-4);
            Assert.Equal(steps[s].GetProperty("lr").GetDouble(), 1e-3 * factor, 12);
        }

        using var final = SafetensorsFile.Open(Fixtures.TinyPath("train", "trajectory.safetensors"));
        var byName = model.Parameters.ToDictionary(p => p.Name);
        foreach (var key in final.Names)
        {
            string name = key["final.".Length..];
            double err = Numerics.RelativeError(byName[name].Data, final.Get(key).ToFloat32());
            output.WriteLine($"final {name}: relative error {err:E2}");
            Assert.True(err <= 1e-4, $"final {name}: relative error {err:E2}");
        }
        if (traj.TryGetProperty("final_param_l2_norms", out var norms))
            foreach (var n in norms.EnumerateObject())
            {
                double ours = Math.Sqrt(byName[n.Name].Data.Sum(x => (double)x * x));
                Assert.True(Math.Abs(ours - n.Value.GetDouble()) <= 1e-4 * n.Value.GetDouble(), $"L2 norm of {n.Name}: {ours} vs {n.Value}");
            }
    }
}
