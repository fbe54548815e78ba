using Llava.Formats;
using Llava.Models.Clip;
using Llava.Models.Llava;
using Llava.Models.Loading;
using Llava.Tensors;
using Llava.Training.Model;
using Llava.Training.Optim;

namespace Llava.Tests;

/// <summary>
/// The trainable CLIP tower: forward parity with the inference tower on the fixture checkpoint and reference pixels,
/// whole-tower gradients against central finite differences, gradient checkpointing, batch independence, and
/// save → load by the inference code.
/// </summary>
public sealed class TrainableClipTests(ITestOutputHelper output)
{
    static readonly string FixtureTower = Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336");
    static readonly string[] ImageCases = ["extreme_ironing__default", "tiny_37x61__pad"];

    /// <summary>Runs the inference tower over one image and collects every hidden state.</summary>
    static float[][] InferenceStates(ClipVisionTower tower, ReadOnlySpan<float> pixels)
    {
        var states = new float[tower.Config.NumLayers + 1][];
        tower.Forward(pixels, (i, s) => states[i] = s.ToArray());
        return states;
    }

    [Fact]
    public void Forward_MatchesInferenceTower_OnReferencePixels()
    {
        var tower = TrainableClipVision.Load(FixtureTower);
        var c = tower.Config;
        Assert.Equal(ClipVisionConfig.FromFile(Path.Combine(FixtureTower, "config.json")), c);
        var images = ImageCases.Select(id => ReferenceCase.Get(id).Tensor("pixel_values")).ToArray();
        var pixels = images.SelectMany(x => x).ToArray();
        var pass = tower.Forward(pixels, images.Length, featureLayer: -1, pooled: true);

        using var file = CheckpointFiles.OpenDirectory(FixtureTower);
        var r = new WeightReader(file);
        var inference = new ClipVisionTower(r, "vision_model.", c, c.NumLayers);
        r.ThrowIfProblems("tower");
        int n = c.NumPositions * c.HiddenSize;
        for (int b = 0; b < images.Length; b++)
        {
            var states = InferenceStates(inference, images[b]);
            for (int i = 0; i <= c.NumLayers; i++)
            {
                double err = Numerics.RelativeError(pass.HiddenState(i).Slice(b * n, n), states[i]);
                output.WriteLine($"{ImageCases[b]} hidden_states[{i}]: relative error {err:E2}");
                Assert.True(err <= 1e-5, $"{ImageCases[b]} hidden_states[{i}]: relative error {err:E2}");
                var refCase = ReferenceCase.Get(ImageCases[b]);
                if (refCase.HasTensor($"debug.vision_hidden_states.{i}"))
                {
                    double refErr = Numerics.RelativeError(pass.HiddenState(i).Slice(b * n, n), refCase.Tensor($"debug.vision_hidden_states.{i}"));
                    output.WriteLine($"  vs transformers: {refErr:E2}");
                    Assert.True(refErr <= 1e-4, $"{ImageCases[b]} hidden_states[{i}] vs transformers: {refErr:E2}");
                }
            }
            // pooler_output = post_layernorm(last_hidden_state[:, 0]).
            var post = new float[c.HiddenSize];
            var w = file.Get("vision_model.post_layernorm.weight").ToFloat32();
            var bias = file.Get("vision_model.post_layernorm.bias").ToFloat32();
            LayerNorm.Forward(post, states[c.NumLayers].AsSpan(0, c.HiddenSize), w, bias, 1, c.HiddenSize, c.LayerNormEps);
            Assert.True(Numerics.RelativeError(pass.Pooled.Slice(b * c.HiddenSize, c.HiddenSize), post) <= 1e-5);
        }

        // LLaVA's select layer −2 runs only the layers it needs and gives the same state.
        var selected = tower.Forward(pixels, images.Length, featureLayer: -2);
        Assert.Equal(c.NumLayers - 1, selected.LayersRun);
        var again = InferenceStates(inference, images[1]);
        Assert.True(Numerics.RelativeError(selected.SelectedImage(1), again[c.NumLayers - 1]) <= 1e-5);
    }

    static ClipVisionConfig TinyConfig(string act = "quick_gelu") => new()
    {
        HiddenSize = 16, IntermediateSize = 32, NumLayers = 2, NumHeads = 2, ImageSize = 28, PatchSize = 14, HiddenAct = act,
    };

    /// <summary>A tiny tower whose every parameter is moved off its init (LayerNorms ≠ 1/0, biases ≠ 0) so no gradient term is trivially zero.</summary>
    static TrainableClipVision RandomTower(ClipVisionConfig c, int seed)
    {
        var tower = new TrainableClipVision(c, seed, initializerRange: 0.2f);
        var rng = new Random(seed + 100);
        foreach (var p in tower.Parameters)
            for (int i = 0; i < p.Length; i++) p.Data[i] += (float)(0.1 * Gaussian(rng));
        return tower;
    }

    static double Gaussian(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    static float[] RandomVector(int n, Random rng) => Enumerable.Range(0, n).Select(_ => (float)Gaussian(rng)).ToArray();

    /// <summary>L = Σ w ⊙ hidden_states[select] + Σ u ⊙ pooled, accumulated in double.</summary>
    static double Loss(TrainableClipVision tower, float[] pixels, int batch, int featureLayer, float[] w, float[]? u)
    {
        var pass = tower.Forward(pixels, batch, featureLayer, pooled: u is not null);
        double loss = 0;
        var s = pass.Selected;
        for (int i = 0; i < s.Length; i++) loss += (double)w[i] * s[i];
        if (u is not null)
        {
            var p = pass.Pooled;
            for (int i = 0; i < p.Length; i++) loss += (double)u[i] * p[i];
        }
        return loss;
    }

    /// <summary>
    /// Every parameter tensor (and the pixels) against central differences, 8 entries sampled per tensor.
    /// Tolerance: the tower runs in f32, so each loss evaluation (Σ of ~160 terms of size ~1) carries ~1e-6 of rounding
    /// noise; with h = 1e-2 a difference quotient is off by ~1e-4 absolute (measured: the FD of k_proj.bias, whose exact
    /// gradient is 0, comes out at 1e-4..2e-4). The h²/6·f''' truncation is smaller at this h (h = 3e-2 makes it
    /// dominate: 2e-3 on the position embeddings). Gradients are O(0.1..10), so a correct backward lands at 1e-5..1.3e-3
    /// relative per tensor (the top end on the tensors with the smallest gradients, observed over five sampling seeds),
    /// while any wrong term (a transposed index, a missing residual, a dropped image, a wrong scale) is O(1e-1..1).
    /// Bar: per-tensor relative error ≤ 5e-3 over the sampled entries, and each entry within 3e-3·(|g| + rms(g)) + 2e-4.
    /// </summary>
    [Theory]
    [InlineData("quick_gelu", -2, true, false)]
    [InlineData("gelu", -1, false, true)]
    [InlineData("quick_gelu", -1, false, false)]
    public void Gradients_MatchFiniteDifferences(string act, int featureLayer, bool pooled, bool checkpointing)
    {
        var c = TinyConfig(act);
        var tower = RandomTower(c, seed: 3);
        tower.GradientCheckpointing = checkpointing;
        const int batch = 2;
        var rng = new Random(11);
        var pixels = RandomVector(batch * 3 * c.ImageSize * c.ImageSize, rng);
        var w = RandomVector(batch * c.NumPositions * c.HiddenSize, rng);
        var u = pooled ? RandomVector(batch * c.HiddenSize, rng) : null;

        tower.ZeroGrad();
        var pass = tower.Forward(pixels, batch, featureLayer, pooled);
        var dPixels = new float[pixels.Length];
        tower.Backward(pass, w, u, dPixels);

        const float h = 1e-2f;
        const int samples = 8;
        var checks = tower.Parameters.Select(p => (p.Name, p.Data, p.Grad))
            .Append(("pixels", pixels, dPixels));
        int tensors = 0;
        foreach (var (name, data, grad) in checks)
        {
            // Layers above the selected state get no gradient without the pooled head; they must stay exactly 0.
            int layer = name.Contains(".layers.") ? int.Parse(name.Split('.')[3]) : -1;
            bool unused = !pooled && (layer >= tower.HiddenStateIndex(featureLayer) || name.Contains("post_layernorm"));
            if (unused)
            {
                Assert.All(grad, g => Assert.Equal(0f, g));
                continue;
            }
            if (name.EndsWith("k_proj.bias"))
            {
                // softmax(q·(k + b)) = softmax(q·k + q·b): a shift shared by every key of a row, so this gradient is 0
                // in exact arithmetic (what remains is f32 rounding) and its difference quotient is pure noise.
                Assert.All(grad, g => Assert.InRange(g, -1e-5f, 1e-5f));
                continue;
            }
            double rms = Math.Sqrt(grad.Sum(g => (double)g * g) / grad.Length);
            var idx = Enumerable.Range(0, samples).Select(_ => rng.Next(data.Length)).Distinct().ToArray();
            double num = 0, den = 0;
            foreach (int i in idx)
            {
                float v = data[i];
                data[i] = v + h;
                double plus = Loss(tower, pixels, batch, featureLayer, w, u);
                data[i] = v - h;
                double minus = Loss(tower, pixels, batch, featureLayer, w, u);
                data[i] = v;
                double fd = (plus - minus) / (2 * h);
                num += (fd - grad[i]) * (fd - grad[i]);
                den += fd * fd;
                Assert.True(Math.Abs(fd - grad[i]) <= 3e-3 * (Math.Abs(grad[i]) + rms) + 2e-4,
                    $"{name}[{i}]: backward {grad[i]:G6}, finite difference {fd:G6}");
            }
            double rel = Math.Sqrt(num / Math.Max(den, 1e-30));
            output.WriteLine($"{name}: rms grad {rms:E2}, sampled relative error {rel:E2}");
            Assert.True(rel <= 5e-3, $"{name}: relative error {rel:E2}");
            tensors++;
        }
        Assert.True(tensors >= 10);
    }

    [Fact]
    public void Checkpointing_GivesIdenticalGradients_AndBatchesAreIndependent()
    {
        var c = TinyConfig();
        var rng = new Random(5);
        const int batch = 3;
        var pixels = RandomVector(batch * 3 * c.ImageSize * c.ImageSize, rng);
        var w = RandomVector(batch * c.NumPositions * c.HiddenSize, rng);
        var u = RandomVector(batch * c.HiddenSize, rng);

        float[][] Grads(bool checkpointing)
        {
            var tower = RandomTower(c, seed: 9);
            tower.GradientCheckpointing = checkpointing;
            var pass = tower.Forward(pixels, batch, -2, pooled: true);
            tower.Backward(pass, w, u);
            return tower.Parameters.Select(p => p.Grad.ToArray()).ToArray();
        }
        var plain = Grads(false);
        var checkpointed = Grads(true);
        for (int i = 0; i < plain.Length; i++) Assert.Equal(plain[i], checkpointed[i]);

        // Image b of a batch equals a batch of one; gradients of a batch are the sum of the single-image gradients.
        var towerB = RandomTower(c, seed: 9);
        var full = towerB.Forward(pixels, batch, -1).Selected.ToArray();
        int n = c.NumPositions * c.HiddenSize, img = 3 * c.ImageSize * c.ImageSize;
        var sum = plain.Select(g => new double[g.Length]).ToArray();
        for (int b = 0; b < batch; b++)
        {
            var single = towerB.Forward(pixels.AsSpan(b * img, img), 1, -1).Selected.ToArray();
            Assert.True(Numerics.RelativeError(full.AsSpan(b * n, n), single) <= 1e-6);
            towerB.ZeroGrad();
            var p1 = towerB.Forward(pixels.AsSpan(b * img, img), 1, -2, pooled: true);
            towerB.Backward(p1, w.AsSpan(b * n, n), u.AsSpan(b * c.HiddenSize, c.HiddenSize));
            for (int k = 0; k < sum.Length; k++)
                for (int i = 0; i < sum[k].Length; i++) sum[k][i] += towerB.Parameters[k].Grad[i];
        }
        for (int k = 0; k < sum.Length; k++)
        {
            var summed = sum[k].Select(x => (float)x).ToArray();
            if (towerB.Parameters[k].Name.EndsWith("k_proj.bias")) Assert.True(Numerics.MaxAbs(summed, plain[k]) <= 1e-5);   // exactly 0 in exact arithmetic
            else Assert.True(Numerics.RelativeError(summed, plain[k]) <= 1e-5, towerB.Parameters[k].Name);
        }
    }

    [Fact]
    public void RandomInit_FollowsTransformersScheme()
    {
        var c = new ClipVisionConfig { HiddenSize = 64, IntermediateSize = 256, NumLayers = 4, NumHeads = 4, ImageSize = 112, PatchSize = 14 };
        var tower = new TrainableClipVision(c, seed: 1);
        var again = new TrainableClipVision(c, seed: 1);
        var byName = tower.Parameters.ToDictionary(p => p.Name);
        Assert.Equal(TrainableClipVision.TensorShapes(c).Count(), tower.Parameters.Count);
        for (int i = 0; i < tower.Parameters.Count; i++) Assert.Equal(tower.Parameters[i].Data, again.Parameters[i].Data);

        double Std(string name) { var d = byName["vision_model." + name].Data; double m = d.Average(x => (double)x); return Math.Sqrt(d.Average(x => (x - m) * (x - m))); }
        void Near(string name, double expected) => Assert.InRange(Std(name), expected * 0.9, expected * 1.1);
        Near("embeddings.class_embedding", 1 / 8.0);
        Near("embeddings.patch_embedding.weight", 0.02);
        Near("embeddings.position_embedding.weight", 0.02);
        Near("encoder.layers.0.self_attn.q_proj.weight", 1 / 8.0 / Math.Sqrt(8));
        Near("encoder.layers.3.self_attn.out_proj.weight", 1 / 8.0);
        Near("encoder.layers.1.mlp.fc1.weight", 1 / Math.Sqrt(128));
        Near("encoder.layers.2.mlp.fc2.weight", 1 / 8.0 / Math.Sqrt(8));
        Assert.All(byName["vision_model.encoder.layers.0.layer_norm1.weight"].Data, x => Assert.Equal(1f, x));
        Assert.All(byName["vision_model.post_layernorm.bias"].Data, x => Assert.Equal(0f, x));
        Assert.All(byName["vision_model.encoder.layers.0.mlp.fc1.bias"].Data, x => Assert.Equal(0f, x));
    }

    [Fact]
    public void Save_LoadsInInferenceTowerAndLlava_WithIdenticalFeatures()
    {
        // The fixture LLaVA's dimensions (mm_hidden_size 64, 336 px, patch 14), fresh weights.
        var c = ClipVisionConfig.FromFile(Path.Combine(FixtureTower, "config.json"));
        var tower = RandomTower(c, seed: 21);
        using var dir = new TempDir();
        string saved = Path.Combine(dir.Path, "clip-trained");
        tower.Save(saved);

        Assert.Equal(c, ClipVisionConfig.FromFile(Path.Combine(saved, "config.json")));
        var pixels = ReferenceCase.Get(ImageCases[0]).Tensor("pixel_values");
        var pass = tower.Forward(pixels, 1, featureLayer: -1);

        using (var file = CheckpointFiles.OpenDirectory(saved))
        {
            var r = new WeightReader(file);
            var inference = new ClipVisionTower(r, "vision_model.", c, c.NumLayers);
            r.ThrowIfProblems("saved tower");
            var states = InferenceStates(inference, pixels);
            for (int i = 0; i <= c.NumLayers; i++) Assert.Equal(states[i], pass.HiddenState(i).ToArray());
        }

        // An original-layout LLaVA whose tower is the saved directory (LLaVA's --vision-tower / mm_vision_tower).
        using (var llava = LlavaModel.Load(Fixtures.TinyPath("original", "llava-v1.5-tiny"), new LlavaLoadOptions { VisionTower = saved }))
        {
            Assert.Equal(c, llava.Config.Vision);
            var expected = tower.Forward(pixels, 1, llava.Config.VisionFeatureLayer).Selected.ToArray();
            Assert.Equal(expected, llava.Vision.Forward(pixels));
            var image = Llava.Vision.ImageDecoder.Decode(File.ReadAllBytes(Fixtures.TinyPath("images", "extreme_ironing.jpg")));
            Assert.Equal(3 * c.ImageSize * c.ImageSize, llava.PreprocessImage(image).Length);
        }

        // And back into a trainable tower, bit for bit.
        var reloaded = TrainableClipVision.Load(saved);
        Assert.Equal(tower.InitializerRange, reloaded.InitializerRange);
        for (int i = 0; i < tower.Parameters.Count; i++)
        {
            Assert.Equal(tower.Parameters[i].Name, reloaded.Parameters[i].Name);
            Assert.Equal(tower.Parameters[i].Data, reloaded.Parameters[i].Data);
        }
    }
}
