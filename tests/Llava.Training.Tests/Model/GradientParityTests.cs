using System.Text.Json;
using Llava.Formats;
using Llava.Formats.Safetensors;
using Llava.Models.Llava;
using Llava.Training.Model;
using Llava.Training.Optim;

namespace Llava.Tests;

/// <summary>
/// Loss and every trainable gradient against LLaVA's own training code (tests/fixtures/llava-tiny/train), for
/// stage 1 (projector), stage 2 (full) and LoRA, single samples and a padded batch. Bar: relative error ≤ 1e-4.
/// </summary>
public sealed class GradientParityTests(ITestOutputHelper output) : IDisposable
{
    const double Tolerance = 1e-4;
    readonly LlavaModel frozen = LlavaModel.Load(Fixtures.TinyPath("original", "llava-v1.5-tiny"));
    public void Dispose() => frozen.Dispose();

    internal static readonly JsonElement Reference = JsonDocument.Parse(File.ReadAllBytes(Fixtures.TinyPath("train", "train_reference.json"))).RootElement;

    public static IEnumerable<object[]> Cases() =>
        Reference.GetProperty("cases").EnumerateObject().Select(c => new object[] { c.Name });

    [Theory]
    [MemberData(nameof(Cases))]
    public void LossAndGradients_MatchLlavaTrainingCode(string caseName)
    {
        var info = Reference.GetProperty("cases").GetProperty(caseName);
        string mode = info.GetProperty("mode").GetString()!;
        using var model = new TrainableLlava(frozen, mode switch { "pretrain" => TrainingMode.Pretrain, "finetune" => TrainingMode.Finetune, _ => TrainingMode.Lora },
            new LoraOptions(4, 8, 0));
        if (mode == "lora") LoadLoraInit(model);
        var batch = LoadBatch(caseName, mode);

        double loss = model.ForwardBackward(batch, out int supervised);
        Assert.Equal(info.GetProperty("n_supervised_tokens").GetInt32(), supervised);
        double refLoss = info.GetProperty("loss").GetDouble();
        output.WriteLine($"{caseName}: loss {loss:F6} vs {refLoss:F6}");
        Assert.InRange(Math.Abs(loss - refLoss) / refLoss, 0, 1e-5);

        using var f = SafetensorsFile.Open(Fixtures.TinyPath("train", "grads", caseName + ".safetensors"));
        var byName = model.Parameters.ToDictionary(p => p.Name);
        int checkedCount = 0;
        foreach (var key in f.Names.Where(n => n.StartsWith("grad.")))
        {
            string name = key["grad.".Length..];
            if (name.EndsWith(".row_ids") || name.EndsWith(".row_norms") || name.EndsWith(".col_sums")) continue;
            if (name.EndsWith(".rows"))
            {
                string param = name[..^".rows".Length];
                CheckRows(byName[param], f, key[..^".rows".Length], caseName);
            }
            else
            {
                var expected = f.Get(key).ToFloat32();
                double err = Numerics.RelativeError(byName[name].Grad, expected);
                Assert.True(err <= Tolerance, $"{caseName}: grad of {name} relative error {err:E2}");
            }
            checkedCount++;
        }
        // Every trainable parameter of the reference is checked, and we train nothing else.
        Assert.Equal(info.GetProperty("trainable_params").GetArrayLength(), checkedCount);
        Assert.Equal(checkedCount, model.Parameters.Count);
    }

    /// <summary>Sparse-stored gradients: the listed rows must match, the row norms must match, every other row of the embedding is 0.</summary>
    void CheckRows(Parameter p, SafetensorsFile f, string prefix, string caseName)
    {
        int cols = p.Shape[1];
        var ids = f.Get(prefix + ".row_ids").ToInt64();
        var rows = f.Get(prefix + ".rows").ToFloat32();
        var ours = new float[rows.Length];
        for (int i = 0; i < ids.Length; i++) p.Grad.AsSpan((int)ids[i] * cols, cols).CopyTo(ours.AsSpan(i * cols, cols));
        double err = Numerics.RelativeError(ours, rows);
        Assert.True(err <= Tolerance, $"{caseName}: grad rows of {p.Name} relative error {err:E2}");
        if (f.Contains(prefix + ".row_norms"))
        {
            var norms = f.Get(prefix + ".row_norms").ToFloat32();
            var oursNorms = new float[norms.Length];
            for (int r = 0; r < norms.Length; r++) oursNorms[r] = (float)Math.Sqrt(p.Grad.AsSpan(r * cols, cols).ToArray().Sum(x => (double)x * x));
            Assert.True(Numerics.RelativeError(oursNorms, norms) <= Tolerance, $"{caseName}: row norms of {p.Name}");
            // Column sums of an lm_head gradient are analytically 0 (each softmax − onehot row sums to 0), so both sides
            // hold only f32 rounding noise: compare their difference with the size of the gradient itself (‖row norms‖).
            var sums = f.Get(prefix + ".col_sums").ToFloat32();
            var oursSums = new double[cols];
            for (int r = 0; r < norms.Length; r++) for (int k = 0; k < cols; k++) oursSums[k] += p.Grad[r * cols + k];
            double diff = Math.Sqrt(oursSums.Select((x, k) => (x - sums[k]) * (x - sums[k])).Sum());
            double scale = Math.Sqrt(norms.Sum(x => (double)x * x));
            output.WriteLine($"{caseName}: lm_head column sums differ by {diff:E2}, gradient norm {scale:E2}");
            Assert.True(diff <= Tolerance * scale, $"{caseName}: column sums of {p.Name} differ by {diff:E2} (gradient norm {scale:E2})");
        }
        else
        {
            var listed = ids.ToHashSet();
            for (int r = 0; r < p.Shape[0]; r++)
                if (!listed.Contains(r))
                    Assert.True(p.Grad.AsSpan(r * cols, cols).IndexOfAnyExcept(0f) < 0, $"{caseName}: {p.Name} row {r} should have no gradient");
        }
    }

    void LoadLoraInit(TrainableLlava model)
    {
        using var init = SafetensorsFile.Open(Fixtures.TinyPath("train", "lora_init.safetensors"));
        foreach (var (name, a) in model.NamedLoraAdapters())
        {
            init.Get(name + ".lora_A.weight").ToFloat32().CopyTo(a.A.Data, 0);
            init.Get(name + ".lora_B.weight").ToFloat32().CopyTo(a.B.Data, 0);
        }
    }

    internal static List<TrainingExample> LoadBatch(string caseName, string mode)
    {
        using var f = SafetensorsFile.Open(Fixtures.TinyPath("train", "grads", caseName + ".safetensors"));
        var shape = f.Get("batch.input_ids").Shape;
        int b = (int)shape[0], t = (int)shape[1];
        var ids = f.Get("batch.input_ids").ToInt64();
        var labels = f.Get("batch.labels").ToInt64();
        var mask = f.Get("batch.attention_mask").ToInt64();
        var samples = Reference.GetProperty("cases").GetProperty(caseName).GetProperty("samples").EnumerateArray().Select(x => x.GetString()!).ToArray();
        var data = JsonDocument.Parse(File.ReadAllBytes(Fixtures.TinyPath("train", "data", mode == "pretrain" ? "pretrain.json" : "finetune.json"))).RootElement;
        var list = new List<TrainingExample>();
        for (int r = 0; r < b; r++)
        {
            int len = 0;
            for (int k = 0; k < t; k++) len += (int)mask[r * t + k];
            var rowIds = ids.Skip(r * t).Take(len).Select(x => (int)x).ToArray();
            var rowLabels = labels.Skip(r * t).Take(len).Select(x => (int)x).ToArray();
            var record = data.EnumerateArray().Single(x => x.GetProperty("id").GetString() == samples[r]);
            float[]? pixels = null;
            if (record.TryGetProperty("image", out var img))
            {
                string stem = Path.GetFileNameWithoutExtension(img.GetString()!);
                pixels = ReferenceCase.Get($"{stem}__{(mode == "pretrain" ? "default" : "pad")}").Tensor("pixel_values");
            }
            list.Add(new TrainingExample(rowIds, rowLabels, pixels));
        }
        return list;
    }
}
