using System.Numerics.Tensors;
using Llava.Formats;
using Llava.Models.Llama;
using Llava.Models.Llava;
using Llava.Models.Loading;
using Llava.Tensors;
using Llava.Training.Optim;

namespace Llava.Training.Model;

/// <summary>
/// LLaVA with gradients: frozen CLIP tower (as LLaVA trains it), projector and LLaMA with f32 trainable copies of
/// whatever the mode trains (frozen weights stay memory-mapped). Parameter names follow the original LLaVA layout
/// (model.mm_projector.0.weight, model.layers.N..., lm_head.weight) whatever layout the checkpoint uses.
/// Loss = mean cross-entropy over all supervised shifted positions of the batch, as LlavaLlamaForCausalLM computes it.
/// </summary>
public sealed class TrainableLlava : IDisposable
{
    public LlavaModel Frozen { get; }
    public LlamaConfig Config { get; }
    public TrainingMode Mode { get; }
    readonly ITensorFile weights;
    readonly Func<string, string> storedName;
    readonly List<Parameter> parameters = new();

    readonly Parameter? embed;              // (V, H)
    readonly WeightMatrix embedFrozen;
    readonly TrainableLlamaLayer[] layers;
    readonly Parameter? finalNorm;
    readonly float[] finalNormFrozen;
    readonly TrainableLinear lmHead;
    readonly TrainableLinear[] projector;   // linear, or mlpNx_gelu
    readonly RotaryEmbedding rope;

    /// <summary>Recompute each layer's activations during the backward instead of keeping them (bounds memory).</summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>QLoRA (--bits 4|8): the frozen LLaMA layer linears are held block-quantized (null: as stored, memory-mapped).</summary>
    public int? BaseBits { get; }
    /// <summary>Bytes of the frozen LLaMA layer linears (q, k, v, o, gate, up, down) as the model holds them: quantized in
    /// native memory with <see cref="BaseBits"/>, else mapped in their stored dtype. 0 when those weights train.</summary>
    public long FrozenBaseBytes { get; private set; }
    /// <summary>Stored bytes of the same matrices in the checkpoint.</summary>
    public long FrozenBaseSourceBytes { get; private set; }
    readonly LoadTimeQuantizer? baseQuantizer;

    /// <summary>Training mode (PEFT's model.train()): LoRA dropout is active. False = evaluation (model.eval()): no dropout.</summary>
    public bool Training { get; set; } = true;
    readonly bool loraDropout;
    readonly ulong dropoutSeed;
    ulong dropoutStepKey;
    long dropoutExample;

    /// <summary>
    /// Keys the LoRA dropout masks of the examples that follow by (seed, <paramref name="step"/>, their order from here), so a run
    /// resumed at a step draws the masks an uninterrupted run would. The trainer calls it before each optimizer step.
    /// </summary>
    public void BeginDropoutStep(long step)
    {
        dropoutStepKey = LoraAdapter.DeriveKey(dropoutSeed, (ulong)step);
        dropoutExample = 0;
    }

    public IReadOnlyList<Parameter> Parameters => parameters;

    /// <param name="baseBits">QLoRA: quantize the frozen LLaMA layer linears at load, as --load-8bit / --load-4bit do for
    /// inference (8 → Q8_0; 4 → Q4_K, Q4_0 when the row length is not a multiple of 256; a matrix whose rows are not a whole
    /// number of blocks stays as stored). Forward and input gradient use their exact dequantization, block rows at a time
    /// (<see cref="MatMul.ForwardDequantized"/>, <see cref="MatMul.BackwardInput"/>); LoRA adapters, norms, embeddings,
    /// lm_head and projector stay f32 / as stored.</param>
    public TrainableLlava(LlavaModel frozen, TrainingMode mode, LoraOptions? lora = null, int seed = 0, int? baseBits = null)
    {
        Frozen = frozen;
        Mode = mode;
        Config = frozen.Config.Text;
        var cfg = frozen.Config;
        weights = CheckpointFiles.OpenDirectory(cfg.ModelDirectory);
        bool hf = cfg.Layout == CheckpointLayout.HuggingFace;
        bool legacyHf = hf && weights.Contains("language_model.model.embed_tokens.weight");
        storedName = n => !hf ? n
            : n.StartsWith("model.mm_projector.") ? (legacyHf ? "multi_modal_projector.linear_" : "model.multi_modal_projector.linear_") + (int.Parse(n.Split('.')[2]) / 2 + 1) + "." + n.Split('.')[3]
            : n == "lm_head.weight" ? (legacyHf ? "language_model.lm_head.weight" : "lm_head.weight")
            : (legacyHf ? "language_model." : "model.language_model.") + (legacyHf ? n : n["model.".Length..]);

        bool trainLm = mode == TrainingMode.Finetune;
        if (baseBits is not null)
        {
            if (trainLm) throw new ArgumentException("--bits quantizes the frozen base of a LoRA run; finetune trains those weights in f32");
            BaseBits = baseBits;
            baseQuantizer = new LoadTimeQuantizer(baseBits.Value);
        }
        var c = Config;
        int h = c.HiddenSize, qd = c.NumHeads * c.HeadDim, kvd = c.NumKvHeads * c.HeadDim, ff = c.IntermediateSize;
        var rng = new Random(seed);

        embed = trainLm ? Param("model.embed_tokens.weight", [c.VocabSize, h]) : null;
        embedFrozen = embed?.AsMatrix(c.VocabSize, h) ?? Matrix("model.embed_tokens.weight", c.VocabSize, h);
        layers = new TrainableLlamaLayer[c.NumLayers];
        for (int l = 0; l < c.NumLayers; l++)
        {
            string p = $"model.layers.{l}.";
            TrainableLinear Lin(string name, int inF, int outF)
            {
                var lin = Linear(p + name, inF, outF, trainLm, bias: false, frozenBase: true);
                if (mode == TrainingMode.Lora)
                {
                    var o = lora ?? new LoraOptions();
                    lin.Lora = LoraAdapter.Create(p + name, inF, outF, o.Rank, o.Alpha, o.Dropout, rng);
                    parameters.Add(lin.Lora.A);
                    parameters.Add(lin.Lora.B);
                }
                return lin;
            }
            var inNorm = trainLm ? Param(p + "input_layernorm.weight", [h]) : null;
            var q = Lin("self_attn.q_proj", h, qd);
            var k = Lin("self_attn.k_proj", h, kvd);
            var v = Lin("self_attn.v_proj", h, kvd);
            var o = Lin("self_attn.o_proj", qd, h);
            var postNorm = trainLm ? Param(p + "post_attention_layernorm.weight", [h]) : null;
            var gate = Lin("mlp.gate_proj", h, ff);
            var up = Lin("mlp.up_proj", h, ff);
            var down = Lin("mlp.down_proj", ff, h);
            layers[l] = new TrainableLlamaLayer(c, inNorm, inNorm is null ? Vector(p + "input_layernorm.weight") : [], postNorm,
                postNorm is null ? Vector(p + "post_attention_layernorm.weight") : [], q, k, v, o, gate, up, down);
        }
        finalNorm = trainLm ? Param("model.norm.weight", [h]) : null;
        finalNormFrozen = finalNorm is null ? Vector("model.norm.weight") : [];
        string head = weights.Contains(storedName("lm_head.weight")) ? "lm_head.weight" : "model.embed_tokens.weight";
        // tie_word_embeddings (no lm_head tensor): the head shares the embedding's data and gradient, so the tie
        // survives training and saving (both backward paths accumulate into the one gradient).
        bool tied = head != "lm_head.weight";
        lmHead = tied && embed is not null
            ? new TrainableLinear("lm_head.weight", h, c.VocabSize, embed, default, null, null)
            : Linear(head, h, c.VocabSize, trainLm, bias: false, asName: "lm_head.weight");

        int depth = cfg.ProjectorDepth;
        projector = new TrainableLinear[depth];
        for (int i = 0; i < depth; i++)
        {
            string name = depth == 1 ? "model.mm_projector" : $"model.mm_projector.{2 * i}";
            projector[i] = Linear(name, i == 0 ? cfg.Vision.HiddenSize : h, h, train: true, bias: true);
        }
        rope = new RotaryEmbedding(c);
        loraDropout = LoraAdapters().Any(a => a.Dropout > 0);
        dropoutSeed = LoraAdapter.DeriveKey((ulong)seed, 0x10AD7009);
        BeginDropoutStep(0);
        // Order: projector first, as LLaVA's named_parameters lists it after the LLM? Keep a stable, documented order.
        parameters.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
    }

    Parameter Param(string name, int[] shape)
    {
        var t = weights.Get(storedName(name));
        var p = new Parameter(name, shape, t.ToFloat32());
        parameters.Add(p);
        return p;
    }

    unsafe WeightMatrix Matrix(string name, int rows, int cols, bool frozenBase = false)
    {
        var t = weights.Get(storedName(name));
        if (t.ElementCount != (long)rows * cols) throw new ModelFormatException($"{name}: shape {t.ShapeString}, expected [{rows}, {cols}]");
        if (!frozenBase) return new WeightMatrix(t.DType, rows, cols, t.Data);
        var m = baseQuantizer is { } q && t.Quant is null ? q.Quantize(name, t, rows, cols)
            : t.Quant is GgmlType g ? new WeightMatrix(g, rows, cols, t.Data) : new WeightMatrix(t.DType, rows, cols, t.Data);
        FrozenBaseBytes += m.RowBytes * rows;
        FrozenBaseSourceBytes += t.ByteLength;
        return m;
    }

    float[] Vector(string name) => weights.Get(storedName(name)).ToFloat32();

    TrainableLinear Linear(string name, int inF, int outF, bool train, bool bias, string? asName = null, bool frozenBase = false)
    {
        string n = asName ?? name;
        Parameter? w = train ? Param(name + (name.EndsWith(".weight") ? "" : ".weight"), [outF, inF]) : null;
        if (w is not null && asName is not null) { parameters.Remove(w); w = new Parameter(asName, [outF, inF], w.Data); parameters.Add(w); }
        var frozenW = w is null ? Matrix(name + (name.EndsWith(".weight") ? "" : ".weight"), outF, inF, frozenBase) : default;
        Parameter? b = bias && train ? Param(name + ".bias", [outF]) : null;
        float[]? frozenB = bias && !train ? Vector(name + ".bias") : null;
        return new TrainableLinear(n, inF, outF, w, frozenW, b, frozenB);
    }

    public void ZeroGrad()
    {
        foreach (var p in parameters) p.ZeroGrad();
    }

    /// <summary>Number of supervised (shifted) positions of an example after image expansion.</summary>
    public int SupervisedCount(TrainingExample e) => Expand(e, out _, out var labels) is var _ ? CountShifted(labels) : 0;

    static int CountShifted(int[] labels)
    {
        int n = 0;
        for (int t = 1; t < labels.Length; t++) if (labels[t] != CrossEntropy.IgnoreIndex) n++;
        return n;
    }

    /// <summary>Positions after image expansion: (token id or −1 for an image row, its image row index), and expanded labels.</summary>
    List<(int Id, int ImageRow)> Expand(TrainingExample e, out int imageRows, out int[] labels)
    {
        int n = Frozen.Config.NumImageTokens;
        var pos = new List<(int, int)>(e.InputIds.Length + n);
        var lab = new List<int>(e.InputIds.Length + n);
        imageRows = 0;
        for (int i = 0; i < e.InputIds.Length; i++)
        {
            if (e.InputIds[i] == LlavaConfig.OriginalImageTokenIndex)
            {
                if (imageRows > 0) throw new ArgumentException("more than one image per example is not supported");
                for (int r = 0; r < n; r++) { pos.Add((-1, r)); lab.Add(CrossEntropy.IgnoreIndex); }
                imageRows = n;
            }
            else { pos.Add((e.InputIds[i], -1)); lab.Add(e.Labels[i]); }
        }
        labels = lab.ToArray();
        return pos;
    }

    /// <summary>
    /// Forward and backward of one example; gradients accumulate into the parameters scaled by <paramref name="lossScale"/>
    /// (1 / supervised positions of the whole batch). Returns the example's summed loss and its supervised count.
    /// </summary>
    public (double LossSum, int Count) ForwardBackward(TrainingExample e, float lossScale) => ForwardBackwardPack([e], lossScale);

    /// <summary>Positions a pack may hold (image rows included): bounds the activations kept for the backward.</summary>
    public int PackPositions { get; set; } = 4096;

    /// <summary>Rows of lm_head logits computed at a time (bounds the (rows, vocab) logits buffer).</summary>
    const int HeadChunkRows = 1024;

    /// <summary>
    /// Forward and backward of several examples, packed into as few passes as <see cref="PackPositions"/> allows: the linear
    /// layers see all their rows at once (one GEMM instead of one per example), attention stays within each example.
    /// The sum of the examples' losses and their supervised count, as per-example calls would give. With LoRA dropout
    /// active each example runs alone, so its masks stay keyed by its place in the step.
    /// </summary>
    public (double LossSum, int Count) ForwardBackward(IReadOnlyList<TrainingExample> examples, float lossScale)
    {
        double sum = 0;
        int count = 0;
        bool alone = Training && loraDropout;
        var pack = new List<TrainingExample>();
        int packed = 0;
        void Flush()
        {
            if (pack.Count == 0) return;
            var (l, n) = ForwardBackwardPack(pack, lossScale);
            sum += l; count += n;
            pack.Clear(); packed = 0;
        }
        foreach (var e in examples)
        {
            int len = ExpandedLength(e);
            if (alone || (pack.Count > 0 && packed + len > PackPositions)) Flush();
            pack.Add(e); packed += len;
        }
        Flush();
        return (sum, count);
    }

    /// <summary>Positions of an example once its image placeholder becomes the image rows.</summary>
    public int ExpandedLength(TrainingExample e) =>
        e.InputIds.Length + (Array.IndexOf(e.InputIds, LlavaConfig.OriginalImageTokenIndex) >= 0 ? Frozen.Config.NumImageTokens - 1 : 0);

    (double LossSum, int Count) ForwardBackwardPack(IReadOnlyList<TrainingExample> pack, float lossScale)
    {
        var c = Config;
        int h = c.HiddenSize, half = c.HeadDim / 2, n = pack.Count;
        // Each example is a segment of the packed rows; its image rows follow the previous examples' in the projector batch.
        var segments = new int[n + 1];
        var positions = new List<(int Id, int ImageRow)>[n];
        var labels = new int[n][];
        var imageBase = new int[n + 1];
        for (int i = 0; i < n; i++)
        {
            positions[i] = Expand(pack[i], out int rows, out labels[i]);
            if (positions[i].Count > Frozen.Config.ContextLength) throw new ArgumentException($"example of {positions[i].Count} positions exceeds the context length {Frozen.Config.ContextLength}");
            if (rows > 0 && pack[i].PixelValues is null) throw new ArgumentException("the example has an image placeholder but no pixel values");
            segments[i + 1] = segments[i] + positions[i].Count;
            imageBase[i + 1] = imageBase[i] + rows;
        }
        int T = segments[n], imageRows = imageBase[n];
        ulong? dropoutKey = Training && loraDropout ? LoraAdapter.DeriveKey(dropoutStepKey, (ulong)dropoutExample++) : null;
        ulong? LayerKey(int l) => dropoutKey is ulong k ? LoraAdapter.DeriveKey(k, 1000 + (ulong)l) : null;

        // Images → projector, all of the pack's images in one batch (activations kept for its backward).
        float[][] projIn = new float[projector.Length][];
        float[]? projOut = null;
        if (imageRows > 0)
        {
            int vh = projector[0].In;
            var x = new float[imageRows * vh];
            for (int i = 0; i < n; i++)
                if (imageBase[i + 1] > imageBase[i])
                    Frozen.SelectVisionFeatures(pack[i].PixelValues!).AsSpan().CopyTo(x.AsSpan(imageBase[i] * vh));
            for (int i = 0; i < projector.Length; i++)
            {
                if (i > 0) { projIn[i] = x.ToArray(); Activations.Gelu(x); }   // projIn[i] holds the pre-GELU values
                else projIn[0] = x;
                var y = new float[imageRows * h];
                projector[i].Forward(y, i > 0 ? x : projIn[0], imageRows);
                x = y;
            }
            projOut = x;
        }

        // Embeddings: text rows from the table, image rows from the projector.
        var hidden = new float[T * h];
        var textIds = new List<int>(T);
        var textRows = new List<int>(T);
        var imageRowAt = new int[T];
        for (int i = 0; i < n; i++)
            for (int t = 0; t < positions[i].Count; t++)
            {
                var (id, row) = positions[i][t];
                int at = segments[i] + t;
                imageRowAt[at] = id >= 0 ? -1 : imageBase[i] + row;
                if (id >= 0) { textIds.Add(id); textRows.Add(at); Embedding.Lookup(hidden.AsSpan(at * h, h), embedFrozen, [id]); }
                else projOut.AsSpan((imageBase[i] + row) * h, h).CopyTo(hidden.AsSpan(at * h, h));
            }

        // Rotary tables per example: each starts at position 0.
        var cos = new float[T * half];
        var sin = new float[T * half];
        for (int i = 0; i < n; i++)
        {
            int len = segments[i + 1] - segments[i];
            rope.Compute(cos.AsSpan(segments[i] * half, len * half), sin.AsSpan(segments[i] * half, len * half), 0, len, len);
        }

        // Decoder: keep every layer's activations, or only its input when checkpointing.
        var acts = new LayerActivations[layers.Length];
        var inputs = GradientCheckpointing ? new float[layers.Length][] : null;
        var shared = GradientCheckpointing ? new LayerActivations() : null;
        for (int l = 0; l < layers.Length; l++)
        {
            if (inputs is not null) inputs[l] = hidden.ToArray();
            acts[l] = shared ?? new LayerActivations();
            layers[l].Forward(hidden, T, cos, sin, acts[l], LayerKey(l), segments);
        }
        var preNorm = hidden;
        var normed = new float[T * h];
        RmsNorm.Forward(normed, preNorm, FinalNormW, T, h, c.RmsNormEps);

        // Loss on shifted positions that are supervised; logits only for those rows, a chunk of rows at a time.
        var rowsList = new List<int>();
        var targetList = new List<int>();
        for (int i = 0; i < n; i++)
            for (int t = 0; t + 1 < positions[i].Count; t++)
                if (labels[i][t + 1] != CrossEntropy.IgnoreIndex) { rowsList.Add(segments[i] + t); targetList.Add(labels[i][t + 1]); }
        int s = rowsList.Count;
        var dHidden = new float[T * h];
        double loss = 0;
        if (s > 0)
        {
            var dNormed = new float[T * h];
            int chunk = Math.Min(s, HeadChunkRows);
            var sel = new float[chunk * h];
            var dSel = new float[chunk * h];
            var logits = new float[(long)chunk * c.VocabSize];
            var targets = new int[chunk];
            for (int r0 = 0; r0 < s; r0 += chunk)
            {
                int m = Math.Min(chunk, s - r0);
                for (int i = 0; i < m; i++) { normed.AsSpan(rowsList[r0 + i] * h, h).CopyTo(sel.AsSpan(i * h, h)); targets[i] = targetList[r0 + i]; }
                var lg = logits.AsSpan(0, (int)((long)m * c.VocabSize));
                lmHead.Forward(lg, sel.AsSpan(0, m * h), m);
                loss += CrossEntropy.ForwardBackward(lg, targets.AsSpan(0, m), m, c.VocabSize, lossScale, out _);
                dSel.AsSpan(0, m * h).Clear();
                lmHead.Backward(dSel.AsSpan(0, m * h), lg, sel.AsSpan(0, m * h), m);
                for (int i = 0; i < m; i++) dSel.AsSpan(i * h, h).CopyTo(dNormed.AsSpan(rowsList[r0 + i] * h, h));
            }
            RmsNorm.Backward(dHidden, finalNorm is null ? default : finalNorm.Grad, dNormed, preNorm, FinalNormW, T, h, c.RmsNormEps);

            var grads = new LayerGradients();
            for (int l = layers.Length - 1; l >= 0; l--)
            {
                if (inputs is not null)
                {
                    var replay = inputs[l];
                    layers[l].Forward(replay, T, cos, sin, acts[l], LayerKey(l), segments);   // recompute this layer's activations (same dropout masks)
                }
                layers[l].Backward(dHidden, T, cos, sin, acts[l], grads, LayerKey(l), segments);
            }

            if (embed is not null)
            {
                var dText = new float[textRows.Count * h];
                for (int i = 0; i < textRows.Count; i++) dHidden.AsSpan(textRows[i] * h, h).CopyTo(dText.AsSpan(i * h, h));
                Embedding.Backward(embed.Grad, dText, textIds.ToArray(), c.VocabSize, h);
            }
            if (imageRows > 0)
            {
                var dOut = new float[imageRows * h];
                for (int t = 0; t < T; t++) if (imageRowAt[t] >= 0) dHidden.AsSpan(t * h, h).CopyTo(dOut.AsSpan(imageRowAt[t] * h, h));
                for (int i = projector.Length - 1; i >= 0; i--)
                {
                    var input = i > 0 ? Gelued(projIn[i]) : projIn[0];
                    var dIn = i > 0 ? new float[imageRows * projector[i].In] : [];
                    projector[i].Backward(dIn, dOut, input, imageRows);
                    if (i > 0)
                    {
                        var dPre = new float[dIn.Length];
                        Activations.GeluBackward(dPre, dIn, projIn[i]);
                        dOut = dPre;
                    }
                }
            }
        }
        return (loss, s);
    }

    static float[] Gelued(float[] pre)
    {
        var x = pre.ToArray();
        Activations.Gelu(x);
        return x;
    }

    ReadOnlySpan<float> FinalNormW => finalNorm is not null ? finalNorm.Data : finalNormFrozen;

    /// <summary>Forward + backward over a batch: loss = Σ losses / Σ supervised positions (LLaVA's mean over the batch).</summary>
    public double ForwardBackward(IReadOnlyList<TrainingExample> batch, out int supervised)
    {
        supervised = batch.Sum(SupervisedCount);
        if (supervised == 0) return 0;
        return ForwardBackward(batch, 1f / supervised).LossSum / supervised;
    }

    public IEnumerable<LoraAdapter> LoraAdapters() => layers.SelectMany(l => l.Linears).Select(x => x.Lora).OfType<LoraAdapter>();

    public IEnumerable<(string Name, LoraAdapter Adapter)> NamedLoraAdapters()
    {
        for (int l = 0; l < layers.Length; l++)
        {
            string p = $"model.layers.{l}.";
            var names = new[] { "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj" };
            var lins = layers[l].Linears.ToArray();
            for (int i = 0; i < 7; i++) if (lins[i].Lora is { } a) yield return (p + names[i], a);
        }
    }

    public void Dispose()
    {
        weights.Dispose();
        baseQuantizer?.Dispose();
    }
}
