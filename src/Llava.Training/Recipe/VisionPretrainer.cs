using System.Diagnostics;
using System.Numerics.Tensors;
using Llava.Tensors;
using Llava.Training.Model;
using Llava.Training.Optim;
using Llava.Training.Synthetic;
using Llava.Vision;

namespace Llava.Training.Recipe;

/// <summary>Knobs of <see cref="VisionPretrainer"/>.</summary>
public sealed record VisionPretrainOptions
{
    public int Steps { get; init; } = 800;
    public int BatchSize { get; init; } = 32;
    public double LearningRate { get; init; } = 1.5e-3;
    public double WeightDecay { get; init; } = 0.05;
    public double WarmupRatio { get; init; } = 0.05;
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Scenes are drawn fresh for every step from seeds derived from this one (never the held-out seeds' stream).</summary>
    public int Seed { get; init; } = 7;
    /// <summary>The hidden state the heads read: LLaVA's mm_vision_select_layer, so the features the projector sees are the trained ones.</summary>
    public int FeatureLayer { get; init; } = -2;
    /// <summary>Loss weight of a patch that covers a shape relative to a background patch: about 7 of 8 patches are
    /// background, and without the weight the tower first learns little more than "background everywhere".</summary>
    public float ForegroundWeight { get; init; } = 2f;
    /// <summary>Cell: every patch of a grid cell is labelled with the cell's shape; Cover: only patches the shape touches.</summary>
    public PatchLabels Labels { get; init; } = PatchLabels.Cover;
    /// <summary>Weight of the per-shape objective (mean of a shape's patch logits names its kind, colour and size) next to the per-patch one (weight 1).</summary>
    public float ShapeWeight { get; init; } = 1f;
    /// <summary>Start the position embeddings from a 2-D sine-cosine table (times this scale; 0 keeps CLIP's N(0, 0.02)
    /// init): locality is then there from the first step instead of being learned from noise.</summary>
    public float SinCosPositionScale { get; init; } = 0.5f;
}

public enum PatchLabels { Cell, Cover }

/// <summary>One optimizer step of the vision pretraining.</summary>
/// <param name="PatchAccuracy">Patches whose kind, colour and size are all right.</param>
/// <param name="ShapeAccuracy">The same over the patches that cover a shape only.</param>
/// <param name="KindAccuracy">Kind right, over shape patches (likewise colour and size).</param>
/// <param name="ShapeKindAccuracy">Per shape: the kind read from its patches' kind logits summed (what attention pooling can read).</param>
public readonly record struct VisionPretrainStep(int Step, int TotalSteps, double Loss, double PatchAccuracy, double ShapeAccuracy,
    double KindAccuracy, double ColorAccuracy, double SizeAccuracy, double ShapeKindAccuracy, double LearningRate, double ImagesPerSecond);

/// <summary>
/// Pretrains a CLIP-style ViT from scratch on the shapes world by dense prediction: every patch token of the
/// selected hidden state predicts, through three linear heads, the kind (none + 4), colour (none + 6) and size
/// (none + 2) of the shape in its grid cell (see <see cref="PatchTargets"/>). The targets come from the scene layout,
/// so the tower learns features that say "what is here"; where a shape is follows from the patch's position. The heads are
/// thrown away afterwards; the LLaVA projector learns to read the features in stage 1.
/// Scenes are rendered on the fly (≈ 0.3 ms each at 112 px), so no image is seen twice.
/// </summary>
public sealed class VisionPretrainer
{
    public const int KindClasses = 5, ColorClasses = 7, SizeClasses = 3, Outputs = KindClasses + ColorClasses + SizeClasses;

    readonly TrainableClipVision vision;
    readonly ClipImageProcessor processor;
    readonly ShapesWorldOptions world;
    public Parameter HeadWeight { get; }
    public Parameter HeadBias { get; }

    public VisionPretrainer(TrainableClipVision vision, ClipImageProcessor processor, int seed)
    {
        this.vision = vision;
        this.processor = processor;
        world = new ShapesWorldOptions { CanvasSize = vision.Config.ImageSize };
        int h = vision.Config.HiddenSize;
        var rng = new Random(seed);
        var w = new float[Outputs * h];
        double bound = 1 / Math.Sqrt(h);
        for (int i = 0; i < w.Length; i++) w[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
        HeadWeight = new Parameter("head.weight", [Outputs, h], w);
        HeadBias = new Parameter("head.bias", [Outputs], new float[Outputs]);
    }

    /// <summary>
    /// Per-patch targets (kind, colour, size; 0 = nothing) for a scene drawn on a canvas of the tower's image size.
    /// The world is a 3×3 grid whose plus-shaped cells hold at most one shape each; every patch whose centre lies in a
    /// cell is labelled with that cell's shape (or nothing), so all patches of a cell learn to say what the cell holds,
    /// which is what the questions ask about (and what a partly covered patch cannot see by itself).
    /// </summary>
    public static void PatchTargets(ShapesScene scene, int patchSize, Span<byte> kind, Span<byte> color, Span<byte> size, PatchLabels labels = PatchLabels.Cell)
    {
        if (labels == PatchLabels.Cover) { CoverTargets(scene, patchSize, kind, color, size); return; }
        int grid = scene.CanvasSize / patchSize;
        float cell = scene.CanvasSize / 3f;
        kind.Clear(); color.Clear(); size.Clear();
        for (int i = 0; i < grid; i++)
            for (int j = 0; j < grid; j++)
            {
                int row = Math.Min(2, (int)((i + 0.5f) * patchSize / cell)), col = Math.Min(2, (int)((j + 0.5f) * patchSize / cell));
                ShapePosition? pos = (row, col) switch
                {
                    (0, 1) => ShapePosition.Top, (1, 0) => ShapePosition.Left, (1, 1) => ShapePosition.Center,
                    (1, 2) => ShapePosition.Right, (2, 1) => ShapePosition.Bottom, _ => null,
                };
                if (pos is null || scene.At(pos.Value) is not { } s) continue;
                int p = i * grid + j;
                kind[p] = (byte)(1 + (int)s.Kind);
                color[p] = (byte)(1 + (int)s.Color);
                size[p] = (byte)(1 + (int)s.Size);
            }
    }

    /// <summary>Patches whose centre lies within the shape's radius plus a quarter patch of its centre.</summary>
    static void CoverTargets(ShapesScene scene, int patchSize, Span<byte> kind, Span<byte> color, Span<byte> size)
    {
        int grid = scene.CanvasSize / patchSize;
        kind.Clear(); color.Clear(); size.Clear();
        for (int i = 0; i < grid; i++)
            for (int j = 0; j < grid; j++)
            {
                float px = (j + 0.5f) * patchSize, py = (i + 0.5f) * patchSize;
                foreach (var s in scene.Shapes)
                {
                    float dx = px - s.CenterX, dy = py - s.CenterY, r = s.Radius + patchSize / 4f;
                    if (dx * dx + dy * dy > r * r) continue;
                    int p = i * grid + j;
                    kind[p] = (byte)(1 + (int)s.Kind);
                    color[p] = (byte)(1 + (int)s.Color);
                    size[p] = (byte)(1 + (int)s.Size);
                }
            }
    }

    /// <summary>Overwrites the patch positions' embeddings with a 2-D sine-cosine table (half the channels for the row, half for the column); the CLS row is left alone.</summary>
    public static void InitSinCosPositions(TrainableClipVision vision, float scale)
    {
        var c = vision.Config;
        int grid = c.ImageSize / c.PatchSize, h = c.HiddenSize, quarter = h / 4;
        var pe = vision.Embeddings.PositionEmbedding.Data;
        for (int i = 0; i < grid; i++)
            for (int j = 0; j < grid; j++)
            {
                var row = pe.AsSpan((1 + i * grid + j) * h, h);
                row.Clear();
                for (int k = 0; k < quarter; k++)
                {
                    double f = Math.Pow(10000, -(double)k / quarter);
                    row[k] = (float)(scale * Math.Sin(i * f));
                    row[quarter + k] = (float)(scale * Math.Cos(i * f));
                    row[2 * quarter + k] = (float)(scale * Math.Sin(j * f));
                    row[3 * quarter + k] = (float)(scale * Math.Cos(j * f));
                }
            }
    }

    public IEnumerable<Parameter> TrainableParameters => vision.Parameters.Append(HeadWeight).Append(HeadBias);

    /// <summary>Trains for <see cref="VisionPretrainOptions.Steps"/> steps; reports every step.</summary>
    public IReadOnlyList<VisionPretrainStep> Train(VisionPretrainOptions o, Action<VisionPretrainStep>? onStep = null, CancellationToken ct = default)
    {
        var c = vision.Config;
        int b = o.BatchSize, grid = c.ImageSize / c.PatchSize, patches = grid * grid, tokens = c.NumPositions, h = c.HiddenSize;
        if (patches + 1 != tokens) throw new InvalidOperationException($"expected {patches} patches + CLS, the tower has {tokens} positions");
        int rows = b * patches;
        var pixels = new float[b * 3 * c.ImageSize * c.ImageSize];
        var feats = new float[rows * h];
        var logits = new float[rows * Outputs];
        var dFeats = new float[rows * h];
        var dSelected = new float[b * tokens * h];
        var kinds = new byte[rows]; var colors = new byte[rows]; var sizes = new byte[rows];
        var pooledGrad = new float[rows * Outputs];
        var meanBuffer = new float[Outputs];
        var groups = new Dictionary<int, List<int>>();
        var decay = vision.Parameters.Where(p => p.Shape.Length > 1).Append(HeadWeight).ToList();
        var noDecay = vision.Parameters.Where(p => p.Shape.Length <= 1).Append(HeadBias).ToList();
        var adam = new AdamW([new ParameterGroup(decay, o.WeightDecay), new ParameterGroup(noDecay, 0)]);
        var schedule = LrSchedule.FromRatio(o.WarmupRatio, o.Steps);
        var history = new List<VisionPretrainStep>(o.Steps);
        var clock = Stopwatch.StartNew();
        int seedBase = o.Seed * 1_000_003;
        if (o.SinCosPositionScale > 0) InitSinCosPositions(vision, o.SinCosPositionScale);

        for (int step = 0; step < o.Steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            // Draw this step's scenes (in parallel: rendering is independent per image).
            Parallel.For(0, b, i =>
            {
                var scene = ShapesWorld.Layout(unchecked(seedBase + step * b + i) & 0x7FFFFFFF, world);
                var px = processor.Preprocess(ShapesWorld.Render(scene));
                px.CopyTo(pixels.AsSpan(i * px.Length, px.Length));
                PatchTargets(scene, c.PatchSize, kinds.AsSpan(i * patches, patches), colors.AsSpan(i * patches, patches), sizes.AsSpan(i * patches, patches), o.Labels);
            });

            foreach (var p in TrainableParameters) p.ZeroGrad();
            var pass = vision.Forward(pixels, b, o.FeatureLayer);
            var sel = pass.Selected;
            for (int i = 0; i < b; i++)   // drop CLS: patch rows only
                sel.Slice((i * tokens + 1) * h, patches * h).CopyTo(feats.AsSpan(i * patches * h, patches * h));
            MatMul.ForwardNT(logits, feats, HeadWeight.Data, rows, Outputs, h);
            for (int r = 0; r < rows; r++) TensorPrimitives.Add(logits.AsSpan(r * Outputs, Outputs), HeadBias.Data, logits.AsSpan(r * Outputs, Outputs));

            // Per shape: the mean of its patches' logits must name its kind, colour and size (over the shape classes,
            // "nothing" excluded). That is what attention pooling over the patches reads downstream, and it lets
            // interior patches share the work instead of each having to see the outline by itself.
            Array.Clear(pooledGrad);
            int shapesSeen = 0, shapesKindOk = 0;
            double pooledLoss = 0;
            for (int i = 0; i < b; i++)
            {
                groups.Clear();
                for (int p = 0; p < patches; p++)
                {
                    int r = i * patches + p;
                    if (kinds[r] == 0) continue;
                    int key = kinds[r] * 8 + colors[r];
                    if (!groups.TryGetValue(key, out var list)) groups[key] = list = [];
                    list.Add(r);
                }
                shapesSeen += groups.Count;
            }
            if (o.ShapeWeight > 0 && shapesSeen > 0)
            {
                float ws = o.ShapeWeight / shapesSeen;
                var mean = meanBuffer.AsSpan();
                for (int i = 0; i < b; i++)
                {
                    groups.Clear();
                    for (int p = 0; p < patches; p++)
                    {
                        int r = i * patches + p;
                        if (kinds[r] == 0) continue;
                        int key = kinds[r] * 8 + colors[r];
                        if (!groups.TryGetValue(key, out var list)) groups[key] = list = [];
                        list.Add(r);
                    }
                    foreach (var (_, list) in groups)
                    {
                        mean.Clear();
                        foreach (int r in list) TensorPrimitives.Add(mean, logits.AsSpan(r * Outputs, Outputs), mean);
                        TensorPrimitives.Multiply(mean, 1f / list.Count, mean);
                        int r0 = list[0];
                        bool okK = true, okC = true, okS = true;
                        pooledLoss += ws * SoftmaxXent(mean.Slice(1, KindClasses - 1), kinds[r0] - 1, ws, ref okK);
                        pooledLoss += ws * SoftmaxXent(mean.Slice(KindClasses + 1, ColorClasses - 1), colors[r0] - 1, ws, ref okC);
                        pooledLoss += ws * SoftmaxXent(mean.Slice(KindClasses + ColorClasses + 1, SizeClasses - 1), sizes[r0] - 1, ws, ref okS);
                        if (okK) shapesKindOk++;
                        mean[0] = 0; mean[KindClasses] = 0; mean[KindClasses + ColorClasses] = 0;   // "nothing" is not in the pooled heads
                        TensorPrimitives.Multiply(mean, 1f / list.Count, mean);
                        foreach (int r in list) TensorPrimitives.Add(pooledGrad.AsSpan(r * Outputs, Outputs), mean, pooledGrad.AsSpan(r * Outputs, Outputs));
                    }
                }
            }

            // Three softmax cross-entropies per patch, each head weighing the same; foreground patches weigh more.
            double wsum = 0;
            for (int r = 0; r < rows; r++) wsum += kinds[r] != 0 ? o.ForegroundWeight : 1;
            double loss = 0; int correct = 0, fg = 0, fgCorrect = 0, kOk = 0, cOk = 0, sOk = 0;
            for (int r = 0; r < rows; r++)
            {
                var l = logits.AsSpan(r * Outputs, Outputs);
                float w = (float)((kinds[r] != 0 ? o.ForegroundWeight : 1) / wsum);
                bool ok = true, okK = true, okC = true, okS = true;
                loss += w * SoftmaxXent(l[..KindClasses], kinds[r], w, ref okK);
                loss += w * SoftmaxXent(l.Slice(KindClasses, ColorClasses), colors[r], w, ref okC);
                loss += w * SoftmaxXent(l.Slice(KindClasses + ColorClasses, SizeClasses), sizes[r], w, ref okS);
                ok = okK && okC && okS;
                if (ok) correct++;
                if (kinds[r] != 0)
                {
                    fg++;
                    if (ok) fgCorrect++;
                    if (okK) kOk++;
                    if (okC) cOk++;
                    if (okS) sOk++;
                }
            }
            // logits now hold dLoss/dLogits of the per-patch terms; add the pooled ones.
            TensorPrimitives.Add(logits, pooledGrad, logits);
            loss += pooledLoss;

            // Head gradients and dFeatures.
            for (int r = 0; r < rows; r++)
            {
                var g = logits.AsSpan(r * Outputs, Outputs);
                TensorPrimitives.Add(HeadBias.Grad, g, HeadBias.Grad);
                var x = feats.AsSpan(r * h, h);
                var dx = dFeats.AsSpan(r * h, h);
                dx.Clear();
                for (int k = 0; k < Outputs; k++)
                {
                    float gk = g[k];
                    if (gk == 0) continue;
                    TensorPrimitives.MultiplyAdd(x, gk, HeadWeight.Grad.AsSpan(k * h, h), HeadWeight.Grad.AsSpan(k * h, h));
                    TensorPrimitives.MultiplyAdd(HeadWeight.Data.AsSpan(k * h, h), gk, dx, dx);
                }
            }
            Array.Clear(dSelected);
            for (int i = 0; i < b; i++)
                dFeats.AsSpan(i * patches * h, patches * h).CopyTo(dSelected.AsSpan((i * tokens + 1) * h, patches * h));
            vision.Backward(pass, dSelected);

            if (o.MaxGradNorm > 0) GradientClipping.ClipByGlobalNorm(TrainableParameters, o.MaxGradNorm);
            double factor = schedule.Factor(step);
            adam.Step(o.LearningRate, factor);
            var s = new VisionPretrainStep(step + 1, o.Steps, loss, (double)correct / rows, fg == 0 ? 1 : (double)fgCorrect / fg,
                fg == 0 ? 1 : (double)kOk / fg, fg == 0 ? 1 : (double)cOk / fg, fg == 0 ? 1 : (double)sOk / fg,
                shapesSeen == 0 ? 1 : (double)shapesKindOk / shapesSeen, o.LearningRate * factor,
                (step + 1) * b / clock.Elapsed.TotalSeconds);
            history.Add(s);
            onStep?.Invoke(s);
        }
        return history;
    }

    /// <summary>Adds scale·(softmax − onehot) into the logits in place and returns −log p[target]; clears ok when the argmax is wrong.</summary>
    static double SoftmaxXent(Span<float> l, int target, float scale, ref bool ok)
    {
        float max = TensorPrimitives.Max(l);
        int arg = TensorPrimitives.IndexOfMax(l);
        if (arg != target) ok = false;
        double sum = 0;
        for (int k = 0; k < l.Length; k++) sum += Math.Exp(l[k] - max);
        double logZ = max + Math.Log(sum);
        double nll = logZ - l[target];
        for (int k = 0; k < l.Length; k++) l[k] = (float)((Math.Exp(l[k] - logZ) - (k == target ? 1 : 0)) * scale);
        return nll;
    }
}
