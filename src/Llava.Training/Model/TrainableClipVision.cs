using System.Numerics.Tensors;
using System.Text.Json;
using Llava.Formats;
using Llava.Models.Clip;
using Llava.Models.Loading;
using Llava.Tensors;
using Llava.Training.Optim;

namespace Llava.Training.Model;

/// <summary>
/// A trainable CLIP ViT image encoder (transformers' CLIPVisionModel / CLIPVisionTransformer): embeddings →
/// pre_layrnorm (hidden_states[0]) → pre-LN encoder layers (hidden_states[1..L]) → post_layernorm of the last CLS row
/// (pooler_output). Same math and kernels as the inference <see cref="ClipVisionTower"/>, with every tensor an f32
/// <see cref="Parameter"/> named as in a CLIPVisionModel checkpoint (vision_model.*), a backward to all of them,
/// gradient checkpointing, and <see cref="Save"/> to a checkpoint directory the inference code loads.
/// <para>Batches: B images (B, 3, S, S) → rows b·T + t of (B·T, C) buffers. Linear layers, norms and activations run over
/// all B·T rows at once (one larger GEMM; rows never interact), attention per image. No value of one image ever
/// depends on another, so image b's hidden states are those of a batch of one.</para>
/// <para><b>Memory plan</b> (floats; R = B·T rows, C hidden, I intermediate, L' = layers run = the selected index, or
/// L with the pooled output):
/// parameters 4 × #params (data, grad, Adam's two moments once stepped);
/// always kept by the pass: hidden_states[0..L'] (L'+1)·R·C (they are the outputs, and the layer inputs the backward
/// needs), the embeddings before pre_layrnorm R·C, im2col B·3·S², patch scratch B·patches·C, norm stats;
/// per layer without checkpointing: 7·R·C + R·I + 4·R (ln1 out, q, k, v, attention out, residual after attention,
/// ln2 out, fc1 out; the activation output is recomputed from fc1's in the backward, attention probabilities are
/// never stored: the flash-style kernel recomputes them);
/// with <see cref="GradientCheckpointing"/> only one such set exists: each layer's forward is re-run from its input
/// hidden state right before its backward (one extra forward of the encoder, ~+30% time);
/// shared scratch (<see cref="TrainableClipWorkspace"/>) 6·R·C + 3·R·I plus the backward's 2·R·C gradient stream.
/// Example, ViT-L/14-336 (C 1024, I 4096, T 577, L' 23) per image: layer sets 23 × 26 MB ≈ 600 MB without
/// checkpointing; with it ≈ 57 MB hidden states + 26 MB + 47 MB scratch ≈ 130 MB.</para>
/// </summary>
public sealed partial class TrainableClipVision
{
    public ClipVisionConfig Config { get; }
    /// <summary>transformers' initializer_range / initializer_factor (kept for <see cref="Save"/>).</summary>
    public float InitializerRange { get; }
    public float InitializerFactor { get; }
    public TrainableClipEmbeddings Embeddings { get; }
    public Parameter PreLnWeight { get; }
    public Parameter PreLnBias { get; }
    public IReadOnlyList<TrainableClipLayer> Layers => layers;
    public Parameter PostLnWeight { get; }
    public Parameter PostLnBias { get; }
    /// <summary>Every parameter, in transformers' named_parameters order.</summary>
    public IReadOnlyList<Parameter> Parameters => parameters;

    /// <summary>Keep only the hidden states in the forward and recompute each layer's activations in the backward.</summary>
    public bool GradientCheckpointing { get; set; }

    readonly TrainableClipLayer[] layers;
    readonly List<Parameter> parameters = new();
    readonly TrainableClipWorkspace workspace = new();
    TrainableClipPass? pass;
    float[] dHidden = [], dAux = [];

    public const string Prefix = "vision_model.";

    /// <summary>A fresh tower initialised as transformers' CLIPPreTrainedModel._init_weights does, from a seeded normal.</summary>
    public TrainableClipVision(ClipVisionConfig config, int seed, float initializerRange = 0.02f, float initializerFactor = 1f)
        : this(config, initializerRange, initializerFactor, RandomInit(config, seed, initializerRange, initializerFactor)) { }

    /// <summary>
    /// Weights from a CLIP checkpoint (any dtype, converted to f32 copies). <paramref name="prefix"/>: "vision_model."
    /// for a CLIP checkpoint, "vision_tower.vision_model." (llava-hf legacy) or "model.vision_tower.vision_model.".
    /// A missing post_layernorm (towers saved without the pooler) starts as the identity LayerNorm (weight 1, bias 0).
    /// </summary>
    public TrainableClipVision(ITensorFile weights, ClipVisionConfig config, string prefix = Prefix, float initializerRange = 0.02f, float initializerFactor = 1f)
        : this(config, initializerRange, initializerFactor, ReadWeights(weights, config, prefix)) { }

    /// <summary>Loads a CLIP checkpoint directory (config.json as CLIPConfig or CLIPVisionConfig, safetensors or .bin weights).</summary>
    public static TrainableClipVision Load(string directory)
    {
        string configPath = Path.Combine(directory, "config.json");
        var config = ClipVisionConfig.FromFile(configPath);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(configPath));
        var root = doc.RootElement;
        var vision = root.TryGetProperty("vision_config", out var v) && v.ValueKind == JsonValueKind.Object ? v : root;
        float range = Number(vision, "initializer_range") ?? Number(root, "initializer_range") ?? 0.02f;
        float factor = Number(vision, "initializer_factor") ?? Number(root, "initializer_factor") ?? 1f;
        using var weights = CheckpointFiles.OpenDirectory(directory);
        return new TrainableClipVision(weights, config, Prefix, range, factor);
    }

    static float? Number(JsonElement e, string key) => e.TryGetProperty(key, out var x) && x.ValueKind == JsonValueKind.Number ? (float)x.GetDouble() : null;

    TrainableClipVision(ClipVisionConfig config, float initializerRange, float initializerFactor, Dictionary<string, float[]> values)
    {
        if (config.HiddenSize % config.NumHeads != 0) throw new ArgumentException($"hidden_size {config.HiddenSize} is not a multiple of num_attention_heads {config.NumHeads}");
        Config = config; InitializerRange = initializerRange; InitializerFactor = initializerFactor;
        var c = config;
        int h = c.HiddenSize, ff = c.IntermediateSize, p = c.PatchSize;
        Parameter P(string name, int[] shape)
        {
            var par = new Parameter(Prefix + name, shape, values[name]);
            parameters.Add(par);
            return par;
        }
        var cls = P("embeddings.class_embedding", [h]);
        var patch = P("embeddings.patch_embedding.weight", [h, c.NumChannels, p, p]);
        var pos = P("embeddings.position_embedding.weight", [c.NumPositions, h]);
        Embeddings = new TrainableClipEmbeddings(c, patch, cls, pos);
        PreLnWeight = P("pre_layrnorm.weight", [h]);
        PreLnBias = P("pre_layrnorm.bias", [h]);
        layers = new TrainableClipLayer[c.NumLayers];
        for (int l = 0; l < c.NumLayers; l++)
        {
            string pre = $"encoder.layers.{l}.";
            TrainableLinear Lin(string name, int inF, int outF)
            {
                var w = P(pre + name + ".weight", [outF, inF]);
                var b = P(pre + name + ".bias", [outF]);
                return new TrainableLinear(Prefix + pre + name, inF, outF, w, default, b, null);
            }
            var k = Lin("self_attn.k_proj", h, h);
            var v = Lin("self_attn.v_proj", h, h);
            var q = Lin("self_attn.q_proj", h, h);
            var o = Lin("self_attn.out_proj", h, h);
            var ln1w = P(pre + "layer_norm1.weight", [h]);
            var ln1b = P(pre + "layer_norm1.bias", [h]);
            var fc1 = Lin("mlp.fc1", h, ff);
            var fc2 = Lin("mlp.fc2", ff, h);
            var ln2w = P(pre + "layer_norm2.weight", [h]);
            var ln2b = P(pre + "layer_norm2.bias", [h]);
            layers[l] = new TrainableClipLayer(c, ln1w, ln1b, ln2w, ln2b, q, k, v, o, fc1, fc2);
        }
        PostLnWeight = P("post_layernorm.weight", [h]);
        PostLnBias = P("post_layernorm.bias", [h]);
    }

    /// <summary>(name without prefix, shape) of every tensor, in transformers' named_parameters order.</summary>
    public static IEnumerable<(string Name, int[] Shape)> TensorShapes(ClipVisionConfig c)
    {
        int h = c.HiddenSize, ff = c.IntermediateSize, p = c.PatchSize;
        yield return ("embeddings.class_embedding", [h]);
        yield return ("embeddings.patch_embedding.weight", [h, c.NumChannels, p, p]);
        yield return ("embeddings.position_embedding.weight", [c.NumPositions, h]);
        yield return ("pre_layrnorm.weight", [h]);
        yield return ("pre_layrnorm.bias", [h]);
        for (int l = 0; l < c.NumLayers; l++)
        {
            string pre = $"encoder.layers.{l}.";
            foreach (var proj in new[] { "k_proj", "v_proj", "q_proj", "out_proj" })
            {
                yield return (pre + "self_attn." + proj + ".weight", [h, h]);
                yield return (pre + "self_attn." + proj + ".bias", [h]);
            }
            yield return (pre + "layer_norm1.weight", [h]);
            yield return (pre + "layer_norm1.bias", [h]);
            yield return (pre + "mlp.fc1.weight", [ff, h]);
            yield return (pre + "mlp.fc1.bias", [ff]);
            yield return (pre + "mlp.fc2.weight", [h, ff]);
            yield return (pre + "mlp.fc2.bias", [h]);
            yield return (pre + "layer_norm2.weight", [h]);
            yield return (pre + "layer_norm2.bias", [h]);
        }
        yield return ("post_layernorm.weight", [h]);
        yield return ("post_layernorm.bias", [h]);
    }

    /// <summary>
    /// CLIPPreTrainedModel._init_weights: class_embedding ~ N(0, C^−½·f); patch and position embeddings ~ N(0, range·f);
    /// q/k/v ~ N(0, C^−½·(2L)^−½·f), out_proj ~ N(0, C^−½·f); fc1 ~ N(0, (2C)^−½·f), fc2 ~ N(0, C^−½·(2L)^−½·f);
    /// every linear bias 0; LayerNorms weight 1, bias 0. Drawn in named_parameters order from one seeded generator.
    /// </summary>
    static Dictionary<string, float[]> RandomInit(ClipVisionConfig c, int seed, float range, float factor)
    {
        var rng = new Random(seed);
        double hid = c.HiddenSize;
        double inProj = Math.Pow(hid, -0.5) * Math.Pow(2.0 * c.NumLayers, -0.5) * factor;
        double outProj = Math.Pow(hid, -0.5) * factor;
        double fcStd = Math.Pow(2 * hid, -0.5) * factor;
        var values = new Dictionary<string, float[]>();
        foreach (var (name, shape) in TensorShapes(c))
        {
            int n = shape.Aggregate(1, (a, b) => a * b);
            var data = new float[n];
            double? std = name switch
            {
                "embeddings.class_embedding" => Math.Pow(hid, -0.5) * factor,
                "embeddings.patch_embedding.weight" or "embeddings.position_embedding.weight" => range * factor,
                _ when name.EndsWith("_proj.weight") => name.EndsWith("out_proj.weight") ? outProj : inProj,
                _ when name.EndsWith("fc1.weight") => fcStd,
                _ when name.EndsWith("fc2.weight") => inProj,
                _ => null,
            };
            if (std is double s) FillNormal(data, rng, s);
            else if (name.EndsWith("norm1.weight") || name.EndsWith("norm2.weight") || name.EndsWith("layrnorm.weight") || name.EndsWith("layernorm.weight")) Array.Fill(data, 1f);
            values[name] = data;
        }
        return values;
    }

    static void FillNormal(Span<float> data, Random rng, double std)
    {
        for (int i = 0; i < data.Length; i += 2)
        {
            // Box–Muller: two independent N(0, 1) draws per pair of uniforms.
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1)), a = 2 * Math.PI * u2;
            data[i] = (float)(std * r * Math.Cos(a));
            if (i + 1 < data.Length) data[i + 1] = (float)(std * r * Math.Sin(a));
        }
    }

    static Dictionary<string, float[]> ReadWeights(ITensorFile file, ClipVisionConfig c, string prefix)
    {
        var r = new WeightReader(file);
        var values = new Dictionary<string, float[]>();
        foreach (var (name, shape) in TensorShapes(c))
        {
            if (name.StartsWith("post_layernorm.") && !r.Has(prefix + name))
            {
                values[name] = name.EndsWith(".weight") ? Enumerable.Repeat(1f, c.HiddenSize).ToArray() : new float[c.HiddenSize];
                continue;
            }
            values[name] = r.Vector(prefix + name, shape.Select(d => (long)d).ToArray());
        }
        if (r.Has(prefix + "embeddings.patch_embedding.bias")) r.Problem($"unexpected '{prefix}embeddings.patch_embedding.bias': CLIP's patch embedding has no bias");
        r.ThrowIfProblems("the CLIP vision tower");
        return values;
    }

    public void ZeroGrad()
    {
        foreach (var p in parameters) p.ZeroGrad();
    }

    /// <summary>Hidden-state index for a LLaVA select layer (negative counts from the end: −1 = last layer, −2 = LLaVA's default).</summary>
    public int HiddenStateIndex(int featureLayer) => ClipVisionTower.LayersFor(Config, featureLayer);

    /// <summary>
    /// pixels (B, 3, S, S) → hidden_states[0 .. index of <paramref name="featureLayer"/>] (and, with
    /// <paramref name="pooled"/>, every layer and the pooler output). Only the layers the outputs need are run.
    /// The returned pass is reused by the next call.
    /// </summary>
    public TrainableClipPass Forward(ReadOnlySpan<float> pixels, int batch, int featureLayer = -1, bool pooled = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        var c = Config;
        int selected = HiddenStateIndex(featureLayer);
        int run = pooled ? c.NumLayers : selected;
        int rows = batch * c.NumPositions, h = c.HiddenSize;
        pass ??= new TrainableClipPass(c);
        pass.Prepare(batch, run, selected, pooled, GradientCheckpointing, Embeddings.ColsPerImage);
        Embeddings.Forward(pass.Embedded, pixels, batch, pass.Cols, pass.PatchScratch);
        LayerNorm.Forward(pass.Hidden[0], pass.Mean0, pass.Rstd0, pass.Embedded, PreLnWeight.Data, PreLnBias.Data, rows, h, c.LayerNormEps);
        for (int l = 0; l < run; l++)
            layers[l].Forward(pass.Hidden[l], pass.Hidden[l + 1], batch, pass.Layers[GradientCheckpointing ? 0 : l], workspace);
        if (pooled)
        {
            var last = pass.Hidden[run];
            for (int b = 0; b < batch; b++) last.AsSpan(b * c.NumPositions * h, h).CopyTo(pass.Cls.AsSpan(b * h, h));
            LayerNorm.Forward(pass.PooledOut, pass.MeanP, pass.RstdP, pass.Cls, PostLnWeight.Data, PostLnBias.Data, batch, h, c.LayerNormEps);
        }
        return pass;
    }

    /// <summary>
    /// Accumulates every parameter's gradient from dSelected (B·T, C) — the gradient of the selected hidden state —
    /// and/or dPooled (B, C) — the gradient of the pooler output (the forward must have computed it). An empty span
    /// contributes nothing. A non-empty <paramref name="dPixels"/> (B, 3, S, S) receives += the image gradient.
    /// Layers above the selected state get gradients only through the pooled output.
    /// </summary>
    public void Backward(TrainableClipPass p, ReadOnlySpan<float> dSelected, ReadOnlySpan<float> dPooled = default, Span<float> dPixels = default)
    {
        if (!ReferenceEquals(p, pass)) throw new ArgumentException("not this tower's pass");
        var c = Config;
        int batch = p.Batch, rows = batch * c.NumPositions, h = c.HiddenSize, n = rows * h;
        if (!dSelected.IsEmpty && dSelected.Length != n) throw new ArgumentException($"dSelected must be (B·T, C) = {n} floats; got {dSelected.Length}");
        if (!dPooled.IsEmpty && !p.HasPooled) throw new InvalidOperationException("dPooled given but the forward ran without pooled output");
        if (!dPooled.IsEmpty && dPooled.Length != batch * h) throw new ArgumentException($"dPooled must be (B, C) = {batch * h} floats; got {dPooled.Length}");
        if (dHidden.Length < n) { dHidden = new float[n]; dAux = new float[n]; }
        var dH = dHidden.AsSpan(0, n);
        dH.Clear();

        if (!dPooled.IsEmpty)
        {
            var dCls = dAux.AsSpan(0, batch * h);
            dCls.Clear();
            LayerNorm.Backward(dCls, PostLnWeight.Grad, PostLnBias.Grad, dPooled, p.Cls, PostLnWeight.Data, p.MeanP, p.RstdP, batch, h);
            for (int b = 0; b < batch; b++) dCls.Slice(b * h, h).CopyTo(dH.Slice(b * c.NumPositions * h, h));
        }
        for (int l = p.LayersRun; ; l--)
        {
            if (l == p.SelectedIndex && !dSelected.IsEmpty) TensorPrimitives.Add(dH, dSelected, dH);
            if (l == 0) break;
            var a = p.Layers[p.Checkpointed ? 0 : l - 1];
            // Recompute: the layer's output is rewritten into hidden_states[l] with the same, deterministic, values.
            if (p.Checkpointed) layers[l - 1].Forward(p.Hidden[l - 1], p.Hidden[l], batch, a, workspace);
            layers[l - 1].Backward(dH, p.Hidden[l - 1], batch, a, workspace);
        }
        var dEmb = dAux.AsSpan(0, n);
        dEmb.Clear();
        LayerNorm.Backward(dEmb, PreLnWeight.Grad, PreLnBias.Grad, dH, p.Embedded, PreLnWeight.Data, p.Mean0, p.Rstd0, rows, h);
        Embeddings.Backward(dEmb, batch, p.Cols, p.PatchScratch, dPixels);
    }

    /// <summary>Floats held besides the parameters: the last pass, the shared scratch, the gradient stream.</summary>
    public long ActivationFloats => (pass?.Floats ?? 0) + workspace.Floats + dHidden.Length + dAux.Length;
}
