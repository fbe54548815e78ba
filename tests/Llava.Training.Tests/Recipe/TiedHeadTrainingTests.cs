using Llava.Models.Llava;
using Llava.Training.Model;
using Llava.Training.Recipe;

namespace Llava.Tests;

/// <summary>With tie_word_embeddings the trained head and the embedding stay one tensor (one gradient, one copy saved).</summary>
public sealed class TiedHeadTrainingTests
{
    [Fact]
    public void Finetune_OnTiedCheckpoint_SharesOneParameter_AndItsGradientGetsBothPaths()
    {
        using var dir = new TempDir();
        var ckpt = MicroLlavaFactory.Create(dir.Path, new MicroLlavaConfig(), seed: 3);
        using var frozen = LlavaModel.Load(ckpt.ModelDirectory);
        using var model = new TrainableLlava(frozen, TrainingMode.Finetune);
        Assert.DoesNotContain(model.Parameters, p => p.Name == "lm_head.weight");
        var embed = model.Parameters.Single(p => p.Name == "model.embed_tokens.weight");

        // The tied gradient must equal embedding-path + head-path gradients of the same model untied
        // (lm_head.weight stored as a copy of the embedding).
        int[] ids = [1, 450, 17205, 338, 2654, 29889, 2];
        int[] labels = [-100, -100, -100, 338, 2654, 29889, 2];
        model.ZeroGrad();
        model.ForwardBackward([new TrainingExample(ids, labels, null)], out _);

        string untiedDir = Path.Combine(dir.Path, "untied");
        Directory.CreateDirectory(untiedDir);
        foreach (var f in Directory.GetFiles(ckpt.ModelDirectory).Where(f => !f.EndsWith("model.safetensors") && !f.EndsWith("config.json")))
            File.Copy(f, Path.Combine(untiedDir, Path.GetFileName(f)));
        using (var src = Llava.Formats.Safetensors.SafetensorsFile.Open(Path.Combine(ckpt.ModelDirectory, "model.safetensors")))
        {
            var entries = src.Names.Select(n => { var t = Llava.Formats.TensorFileExtensions.Get(src, n); return new Llava.Formats.Safetensors.SafetensorsWriter.Entry(n, t.DType, t.Shape, t.Bytes.ToArray()); }).ToList();
            var e = entries.Single(x => x.Name == "model.embed_tokens.weight");
            entries.Add(e with { Name = "lm_head.weight" });
            Llava.Formats.Safetensors.SafetensorsWriter.Write(Path.Combine(untiedDir, "model.safetensors"), entries);
        }
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(ckpt.ModelDirectory, "config.json")))!.AsObject();
        config["tie_word_embeddings"] = false;
        config["mm_vision_tower"] = ckpt.VisionDirectory;
        File.WriteAllText(Path.Combine(untiedDir, "config.json"), config.ToJsonString());
        using var frozenUntied = LlavaModel.Load(untiedDir);
        using var untied = new TrainableLlava(frozenUntied, TrainingMode.Finetune);
        untied.ZeroGrad();
        untied.ForwardBackward([new TrainingExample(ids, labels, null)], out _);
        var uEmbed = untied.Parameters.Single(p => p.Name == "model.embed_tokens.weight").Grad;
        var uHead = untied.Parameters.Single(p => p.Name == "lm_head.weight").Grad;
        var sum = new float[uEmbed.Length];
        for (int i = 0; i < sum.Length; i++) sum[i] = uEmbed[i] + uHead[i];
        Assert.InRange(Numerics.RelativeError(embed.Grad, sum), 0, 1e-6);
    }
}
