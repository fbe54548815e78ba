using System.Text.Json;
using Llava.Models.Llava;
using Llava.Training.Model;
using Llava.Training.Recipe;
using Llava.Training.Synthetic;
using Llava.Vision;
using Llava.Tests;

namespace Llava.Training.Tests.Recipe;

public sealed class MicroLlavaRecipeTests
{
    [Fact]
    public void Patch_targets_label_each_cell_with_its_shape()
    {
        var world = new ShapesWorldOptions { CanvasSize = 112 };
        // 112 px / 14 px patches = 8×8; cell boundaries at 37.3 and 74.7 px put patch centres (7, 21, 35 | 49, 63 | 77, 91, 105) in cells 0 | 1 | 2.
        int[] cellOf = [0, 0, 0, 1, 1, 2, 2, 2];
        for (int seed = 0; seed < 200; seed++)
        {
            var scene = ShapesWorld.Layout(seed, world);
            var kind = new byte[64]; var color = new byte[64]; var size = new byte[64]; var position = new byte[64];
            VisionPretrainer.PatchTargets(scene, 14, kind, color, size, position, PatchLabels.Cell);
            for (int i = 0; i < 8; i++)
                for (int j = 0; j < 8; j++)
                {
                    int p = i * 8 + j;
                    ShapePosition? pos = (cellOf[i], cellOf[j]) switch
                    {
                        (0, 1) => ShapePosition.Top, (1, 0) => ShapePosition.Left, (1, 1) => ShapePosition.Center,
                        (1, 2) => ShapePosition.Right, (2, 1) => ShapePosition.Bottom, _ => null,
                    };
                    var s = pos is null ? null : scene.At(pos.Value);
                    Assert.Equal(s is null ? 0 : 1 + (int)s.Kind, kind[p]);
                    Assert.Equal(s is null ? 0 : 1 + (int)s.Color, color[p]);
                    Assert.Equal(s is null ? 0 : 1 + (int)s.Size, size[p]);
                    Assert.Equal(s is null ? 0 : 1 + (int)pos!.Value, position[p]);
                }
            // The side cells hold 3×2 patches, the centre 2×2.
            Assert.InRange(kind.Count(k => k != 0), 4 * scene.Shapes.Count, 6 * scene.Shapes.Count);
        }
    }

    [Fact]
    public void Cover_targets_mark_the_patches_a_shape_touches()
    {
        var world = new ShapesWorldOptions { CanvasSize = 112 };
        for (int seed = 0; seed < 200; seed++)
        {
            var scene = ShapesWorld.Layout(seed, world);
            var kind = new byte[64]; var color = new byte[64]; var size = new byte[64]; var position = new byte[64];
            VisionPretrainer.PatchTargets(scene, 14, kind, color, size, position, PatchLabels.Cover);
            foreach (var s in scene.Shapes)
            {
                int p = (int)(s.CenterY / 14) * 8 + (int)(s.CenterX / 14);   // the patch holding the centre
                Assert.Equal((1 + (int)s.Kind, 1 + (int)s.Color, 1 + (int)s.Size, 1 + (int)s.Position), (kind[p], color[p], size[p], position[p]));
            }
            for (int p = 0; p < 64; p++)
            {
                Assert.True((kind[p] == 0) == (color[p] == 0) && (kind[p] == 0) == (size[p] == 0) && (kind[p] == 0) == (position[p] == 0), $"seed {seed} patch {p}");
                if (kind[p] == 0) continue;
                // A labelled patch's centre is within radius + a quarter patch of its shape's centre.
                var s = scene.Shapes.Single(s => 1 + (int)s.Kind == kind[p] && 1 + (int)s.Color == color[p]);
                Assert.Equal(1 + (int)s.Position, position[p]);
                float dx = (p % 8 + 0.5f) * 14 - s.CenterX, dy = (p / 8 + 0.5f) * 14 - s.CenterY;
                Assert.True(MathF.Sqrt(dx * dx + dy * dy) <= s.Radius + 3.5f + 1e-3f);
            }
        }
    }

    [Fact]
    public void Scene_targets_count_shapes_colours_kinds_and_pairs()
    {
        var world = new ShapesWorldOptions { CanvasSize = 112 };
        var t = new byte[VisionPretrainer.GlobalGroups];
        for (int seed = 0; seed < 300; seed++)
        {
            var scene = ShapesWorld.Layout(seed, world);
            VisionPretrainer.SceneTargets(scene, t);
            Assert.Equal(scene.Shapes.Count, t[0]);
            foreach (var c in Enum.GetValues<ShapeColor>()) Assert.Equal(scene.CountColor(c), t[1 + (int)c]);
            foreach (var k in Enum.GetValues<ShapeKind>())
            {
                Assert.Equal(scene.CountKind(k), t[7 + (int)k]);
                foreach (var c in Enum.GetValues<ShapeColor>()) Assert.Equal(scene.Has(k, c) ? 1 : 0, t[11 + (int)k * 6 + (int)c]);
            }
        }
        Assert.Throws<ArgumentException>(() => VisionPretrainer.SceneTargets(ShapesWorld.Layout(0, world), new byte[3]));
    }

    [Fact]
    public void Vision_pretraining_with_scene_heads_adds_their_loss()
    {
        var config = MicroLlavaConfig.Default.Vision;
        var processor = new ClipImageProcessor(new ClipImageProcessorConfig { SizeShortestEdge = 112, CropHeight = 112, CropWidth = 112 });
        VisionPretrainStep First(float globalWeight) =>
            new VisionPretrainer(new TrainableClipVision(config, seed: 5), processor, seed: 5)
                .Train(new VisionPretrainOptions { Steps = 1, BatchSize = 4, GlobalWeight = globalWeight })[0];
        var off = First(0);
        var on = First(1);
        Assert.True(double.IsNaN(off.GlobalAccuracy));
        Assert.InRange(on.GlobalAccuracy, 0, 1);
        // Same weights and scenes at step 1, so the difference is the scene-level terms alone: near their uniform-guess
        // value 0.5·ln 5 + 10·0.1·ln 5 + 24·0.03·ln 2 ≈ 2.91 (random logits move it a little).
        Assert.InRange(on.Loss - off.Loss, 2.4, 3.6);
        Assert.Equal(off.PatchAccuracy, on.PatchAccuracy);
    }

    [Fact]
    public void Vision_pretraining_learns_the_patch_labels()
    {
        var config = MicroLlavaConfig.Default.Vision;
        var tower = new TrainableClipVision(config, seed: 3);
        var pre = new VisionPretrainer(tower, new ClipImageProcessor(new ClipImageProcessorConfig { SizeShortestEdge = 112, CropHeight = 112, CropWidth = 112 }), seed: 3);
        var hist = pre.Train(new VisionPretrainOptions { Steps = 40, BatchSize = 8, LearningRate = 2e-3, WarmupRatio = 0.1 });
        // The loss starts near (ln 5 + ln 7 + ln 3 + ln 6) per patch + (ln 4 + ln 6 + ln 2) per shape ≈ 6.45 + 3.87
        // (random logits add to it) and must halve.
        Assert.InRange(hist[0].Loss, 8.5, 14);
        Assert.True(hist.TakeLast(5).Average(s => s.Loss) < 0.5 * hist[0].Loss, $"loss after 40 steps: {hist[^1].Loss}");
    }

    [Fact]
    public void Text_data_is_llava_format_with_the_caption_in_place_of_the_image()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "text.json");
        RecipeTextData.Write(path, 50, seed: 4);
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        Assert.Equal(50, doc.RootElement.GetArrayLength());
        foreach (var rec in doc.RootElement.EnumerateArray())
        {
            Assert.False(rec.TryGetProperty("image", out _));
            var conv = rec.GetProperty("conversations").EnumerateArray().ToList();
            Assert.InRange(conv.Count, 4, 8);
            Assert.Equal(0, conv.Count % 2);
            string first = conv[0].GetProperty("value").GetString()!;
            Assert.DoesNotContain("<image>", first);
            Assert.Contains(" on the left.", first + " on the left.");   // caption sentence, then the question on its own line
            Assert.Contains('\n', first);
            for (int i = 0; i < conv.Count; i++) Assert.Equal(i % 2 == 0 ? "human" : "gpt", conv[i].GetProperty("from").GetString());
        }
        // Same seed, same bytes.
        string again = Path.Combine(dir.Path, "again.json");
        RecipeTextData.Write(again, 50, seed: 4);
        Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(again));
    }

    [Fact]
    public void Smoke_recipe_runs_every_stage_and_a_rerun_reuses_them()
    {
        using var dir = new TempDir();
        var options = MicroRecipeOptions.Smoke(dir.Path);
        var result = new MicroLlavaRecipe(options).Run();
        Assert.Equal(["init", "data", "vision", "text", "stage1", "stage2"], result.Stages.Select(s => s.Name));
        Assert.All(result.Stages, s => Assert.False(s.Reused));
        // The stage-2 output is a loadable LLaVA checkpoint with the trained tower.
        using (var model = LlavaModel.Load(result.ModelDir, new LlavaLoadOptions { VisionTower = result.VisionDir }))
        {
            Assert.Equal(64, model.Config.NumImageTokens);
            Assert.Equal(256, model.Config.Text.HiddenSize);
        }
        Assert.True(File.Exists(Path.Combine(result.DataDir, "eval.json")));
        var again = new MicroLlavaRecipe(options).Run();
        Assert.All(again.Stages, s => Assert.True(s.Reused));
        Assert.Equal(0, again.Seconds);
    }
}
