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
    /// <summary>Weight of the scene-level heads read from the CLS token (how many shapes; how many of each colour and
    /// kind; which kind-colour pairs are present), next to the per-patch heads (weight 1); 0 (the default) turns them
    /// off. Meant for models that keep the CLS token among their image tokens (mm_vision_select_feature cls_patch):
    /// an absent colour leaves no patch to attend to, so absence would have to be written where the language model
    /// can read it. Measured on the micro recipe, it did not pay: with cls_patch and weight 1 the tower's per-shape
    /// kind accuracy fell from 98.6% to 91.9%, all scene-level answers were right on 2.7% of images after 800 steps,
    /// and held-out accuracy after stage 2 was 61.6% against 67.8% without (yes/no questions stayed at 50% either way).
    /// Asking every patch to carry those answers did no better (all right on 1.2% of patches, kind per shape 88.2%).</summary>
    public float GlobalWeight { get; init; }
}

public enum PatchLabels { Cell, Cover }

/// <summary>One optimizer step of the vision pretraining.</summary>
/// <param name="PatchAccuracy">Patches whose kind, colour and size are all right.</param>
/// <param name="ShapeAccuracy">The same over the patches that cover a shape only.</param>
/// <param name="KindAccuracy">Kind right, over shape patches (likewise colour and size).</param>
/// <param name="ShapeKindAccuracy">Per shape: the kind read from its patches' kind logits summed (what attention pooling can read).</param>
/// <param name="PositionAccuracy">Position (left, right, top, bottom, center) of the shape a patch covers, over shape patches.</param>
/// <param name="GlobalAccuracy">Images whose scene-level heads (on the CLS token) are all right: every count and every pair's presence (NaN when <see cref="VisionPretrainOptions.GlobalWeight"/> is 0).</param>
public readonly record struct VisionPretrainStep(int Step, int TotalSteps, double Loss, double PatchAccuracy, double ShapeAccuracy,
    double KindAccuracy, double ColorAccuracy, double SizeAccuracy, double ShapeKindAccuracy, double LearningRate, double ImagesPerSecond,
    double PositionAccuracy = 0, double GlobalAccuracy = 0);

/// <summary>
/// Pretrains a CLIP-style ViT from scratch on the shapes world by dense prediction: every patch token of the
/// selected hidden state predicts, through linear heads, the kind (none + 4), colour (none + 6), size (none + 2) and
/// position (none + 5) of the shape it shows (see <see cref="PatchTargets"/>), and the CLS token predicts the
/// scene's counts (all shapes, per colour, per kind) and which kind-colour pairs it holds (<see cref="SceneTargets"/>).
/// The targets come from the scene layout, so the tower learns features that say "what is here, where, and what is
/// in the whole picture": the attributes the questions ask about, each readable from the image tokens. The heads are
/// thrown away afterwards; the LLaVA projector learns to read the features in stage 1.
/// Scenes are rendered on the fly (≈ 0.3 ms each at 112 px), so no image is seen twice.
/// </summary>
public sealed class VisionPretrainer
{
    public const int KindClasses = 5, ColorClasses = 7, SizeClasses = 3, PositionClasses = 6;
    public const int Outputs = KindClasses + ColorClasses + SizeClasses + PositionClasses;
    const int CountClasses = 5;
    /// <summary>Scene-level groups: the number of shapes, the count of each colour and of each kind (0-4 each), and
    /// the presence (no/yes) of each kind-colour pair.</summary>
    public const int GlobalGroups = 1 + 6 + 4 + 24;
    /// <summary>Outputs of the CLS head: the scene-level groups side by side.</summary>
    public const int SceneOutputs = (1 + 6 + 4) * CountClasses + 24 * 2;

    /// <summary>The CLS head's softmax groups: output offset, classes, weight (the pairs are many and mostly "no").</summary>
    static readonly (int Offset, int Classes, float Weight)[] SceneGroups = BuildSceneGroups();

    static (int, int, float)[] BuildSceneGroups()
    {
        var g = new List<(int, int, float)>();
        int off = 0;
        g.Add((off, CountClasses, 0.5f)); off += CountClasses;
        for (int i = 0; i < 10; i++) { g.Add((off, CountClasses, 0.1f)); off += CountClasses; }   // 6 colours, 4 kinds
        for (int i = 0; i < 24; i++) { g.Add((off, 2, 0.03f)); off += 2; }
        if (off != SceneOutputs || g.Count != GlobalGroups) throw new InvalidOperationException("scene head layout");
        return g.ToArray();
    }

    readonly TrainableClipVision vision;
    readonly ClipImageProcessor processor;
    readonly ShapesWorldOptions world;
    public Parameter HeadWeight { get; }
    public Parameter HeadBias { get; }
    public Parameter SceneHeadWeight { get; }
    public Parameter SceneHeadBias { get; }

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
        var ws = new float[SceneOutputs * h];
        for (int i = 0; i < ws.Length; i++) ws[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
        SceneHeadWeight = new Parameter("scene_head.weight", [SceneOutputs, h], ws);
        SceneHeadBias = new Parameter("scene_head.bias", [SceneOutputs], new float[SceneOutputs]);
    }

    /// <summary>
    /// Per-patch targets (kind, colour, size; 0 = nothing) for a scene drawn on a canvas of the tower's image size.
    /// The world is a 3×3 grid whose plus-shaped cells hold at most one shape each; every patch whose centre lies in a
    /// cell is labelled with that cell's shape (or nothing), so all patches of a cell learn to say what the cell holds,
    /// which is what the questions ask about (and what a partly covered patch cannot see by itself).
    /// </summary>
    public static void PatchTargets(ShapesScene scene, int patchSize, Span<byte> kind, Span<byte> color, Span<byte> size, PatchLabels labels = PatchLabels.Cell)
    {
        var position = new byte[kind.Length];
        PatchTargets(scene, patchSize, kind, color, size, position, labels);
    }

    /// <summary>As above, plus the position (1 + <see cref="ShapePosition"/>; 0 = nothing) of the labelled shape.</summary>
    public static void PatchTargets(ShapesScene scene, int patchSize, Span<byte> kind, Span<byte> color, Span<byte> size, Span<byte> position, PatchLabels labels)
    {
        if (labels == PatchLabels.Cover) { CoverTargets(scene, patchSize, kind, color, size, position); return; }
        int grid = scene.CanvasSize / patchSize;
        float cell = scene.CanvasSize / 3f;
        kind.Clear(); color.Clear(); size.Clear(); position.Clear();
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
                position[p] = (byte)(1 + (int)s.Position);
            }
    }

    /// <summary>
    /// The scene-level targets, in <see cref="GlobalGroups"/> order: number of shapes; count of each colour
    /// (<see cref="ShapeColor"/> order); count of each kind; then 1 if the scene holds kind k in colour c (index k·6 + c).
    /// </summary>
    public static void SceneTargets(ShapesScene scene, Span<byte> targets)
    {
        if (targets.Length != GlobalGroups) throw new ArgumentException($"expected {GlobalGroups} targets", nameof(targets));
        targets.Clear();
        targets[0] = (byte)scene.Shapes.Count;
        foreach (var s in scene.Shapes)
        {
            targets[1 + (int)s.Color]++;
            targets[7 + (int)s.Kind]++;
            targets[11 + (int)s.Kind * 6 + (int)s.Color] = 1;
        }
    }

    /// <summary>Patches whose centre lies within the shape's radius plus a quarter patch of its centre.</summary>
    static void CoverTargets(ShapesScene scene, int patchSize, Span<byte> kind, Span<byte> color, Span<byte> size, Span<byte> position)
    {
        int grid = scene.CanvasSize / patchSize;
        kind.Clear(); color.Clear(); size.Clear(); position.Clear();
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
                    position[p] = (byte)(1 + (int)s.Position);
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

    public IEnumerable<Parameter> TrainableParameters => vision.Parameters.Append(HeadWeight).Append(HeadBias).Append(SceneHeadWeight).Append(SceneHeadBias);

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
        var kinds = new byte[rows]; var colors = new byte[rows]; var sizes = new byte[rows]; var positions = new byte[rows];
        var sceneTargets = new byte[b * GlobalGroups];
        var pooledGrad = new float[rows * Outputs];
        var meanBuffer = new float[Outputs];
        var groups = new Dictionary<int, List<int>>();
        var shapeRows = new List<List<int>>();
        var decay = vision.Parameters.Where(p => p.Shape.Length > 1).Append(HeadWeight).Append(SceneHeadWeight).ToList();
        var noDecay = vision.Parameters.Where(p => p.Shape.Length <= 1).Append(HeadBias).Append(SceneHeadBias).ToList();
        var cls = new float[b * h];
        var sceneLogits = new float[b * SceneOutputs];
        var dCls = new float[b * h];
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
                PatchTargets(scene, c.PatchSize, kinds.AsSpan(i * patches, patches), colors.AsSpan(i * patches, patches), sizes.AsSpan(i * patches, patches),
                    positions.AsSpan(i * patches, patches), o.Labels);
                SceneTargets(scene, sceneTargets.AsSpan(i * GlobalGroups, GlobalGroups));
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
            int shapesKindOk = 0;
            double pooledLoss = 0;
            // Each shape's patch rows (a shape is one kind-colour pair of one image), image by image.
            shapeRows.Clear();
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
                shapeRows.AddRange(groups.Values);
            }
            int shapesSeen = shapeRows.Count;
            if (o.ShapeWeight > 0 && shapesSeen > 0)
            {
                float ws = o.ShapeWeight / shapesSeen;
                var mean = meanBuffer.AsSpan();
                foreach (var list in shapeRows)
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
                    mean[(KindClasses + ColorClasses + SizeClasses)..].Clear();                   // nor is position
                    TensorPrimitives.Multiply(mean, 1f / list.Count, mean);
                    foreach (int r in list) TensorPrimitives.Add(pooledGrad.AsSpan(r * Outputs, Outputs), mean, pooledGrad.AsSpan(r * Outputs, Outputs));
                }
            }

            // Per patch: four softmax cross-entropies about the shape it shows (foreground patches weigh more).
            double wsum = 0;
            for (int r = 0; r < rows; r++) wsum += kinds[r] != 0 ? o.ForegroundWeight : 1;
            double loss = 0; int correct = 0, fg = 0, fgCorrect = 0, kOk = 0, cOk = 0, sOk = 0, pOk = 0;
            for (int r = 0; r < rows; r++)
            {
                var l = logits.AsSpan(r * Outputs, Outputs);
                float w = (float)((kinds[r] != 0 ? o.ForegroundWeight : 1) / wsum);
                bool okK = true, okC = true, okS = true, okP = true;
                loss += w * SoftmaxXent(l[..KindClasses], kinds[r], w, ref okK);
                loss += w * SoftmaxXent(l.Slice(KindClasses, ColorClasses), colors[r], w, ref okC);
                loss += w * SoftmaxXent(l.Slice(KindClasses + ColorClasses, SizeClasses), sizes[r], w, ref okS);
                // Position only where there is a shape: "nothing here" is the kind head's to say.
                float wp = kinds[r] != 0 ? w : 0;
                loss += wp * SoftmaxXent(l.Slice(KindClasses + ColorClasses + SizeClasses, PositionClasses), positions[r], wp, ref okP);
                bool ok = okK && okC && okS && (kinds[r] == 0 || okP);
                if (ok) correct++;
                if (kinds[r] != 0)
                {
                    fg++;
                    if (ok) fgCorrect++;
                    if (okK) kOk++;
                    if (okC) cOk++;
                    if (okS) sOk++;
                    if (okP) pOk++;
                }
            }
            // logits now hold dLoss/dLogits of the per-patch terms; add the pooled ones.
            TensorPrimitives.Add(logits, pooledGrad, logits);
            loss += pooledLoss;

            // Scene-level groups from each image's CLS row.
            int gOk = 0;
            Array.Clear(dCls);
            if (o.GlobalWeight > 0)
            {
                for (int i = 0; i < b; i++) sel.Slice(i * tokens * h, h).CopyTo(cls.AsSpan(i * h, h));
                MatMul.ForwardNT(sceneLogits, cls, SceneHeadWeight.Data, b, SceneOutputs, h);
                for (int i = 0; i < b; i++)
                {
                    var l = sceneLogits.AsSpan(i * SceneOutputs, SceneOutputs);
                    TensorPrimitives.Add(l, SceneHeadBias.Data, l);
                    var st = sceneTargets.AsSpan(i * GlobalGroups, GlobalGroups);
                    bool okG = true;
                    for (int g = 0; g < GlobalGroups; g++)
                    {
                        var (off, classes, weight) = SceneGroups[g];
                        float wg = o.GlobalWeight * weight / b;
                        loss += wg * SoftmaxXent(l.Slice(off, classes), st[g], wg, ref okG);
                    }
                    if (okG) gOk++;
                }
                MatMul.Backward(dCls, SceneHeadWeight.Grad, SceneHeadBias.Grad, sceneLogits, cls, SceneHeadWeight.Data, b, SceneOutputs, h);
            }

            // Head gradients and dFeatures (the head is a linear layer over the patch rows).
            Array.Clear(dFeats);
            MatMul.Backward(dFeats, HeadWeight.Grad, HeadBias.Grad, logits, feats, HeadWeight.Data, rows, Outputs, h);
            Array.Clear(dSelected);
            for (int i = 0; i < b; i++)
            {
                dFeats.AsSpan(i * patches * h, patches * h).CopyTo(dSelected.AsSpan((i * tokens + 1) * h, patches * h));
                dCls.AsSpan(i * h, h).CopyTo(dSelected.AsSpan(i * tokens * h, h));
            }
            vision.Backward(pass, dSelected);

            if (o.MaxGradNorm > 0) GradientClipping.ClipByGlobalNorm(TrainableParameters, o.MaxGradNorm);
            double factor = schedule.Factor(step);
            adam.Step(o.LearningRate, factor);
            var s = new VisionPretrainStep(step + 1, o.Steps, loss, (double)correct / rows, fg == 0 ? 1 : (double)fgCorrect / fg,
                fg == 0 ? 1 : (double)kOk / fg, fg == 0 ? 1 : (double)cOk / fg, fg == 0 ? 1 : (double)sOk / fg,
                shapesSeen == 0 ? 1 : (double)shapesKindOk / shapesSeen, o.LearningRate * factor,
                (step + 1) * b / clock.Elapsed.TotalSeconds, fg == 0 ? 1 : (double)pOk / fg, o.GlobalWeight > 0 ? (double)gOk / b : double.NaN);
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
