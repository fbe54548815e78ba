using Llava.Models.Clip;

namespace Llava.Training.Model;

/// <summary>
/// The result of one <see cref="TrainableClipVision.Forward"/> over B images and everything its backward needs.
/// Owned by the tower and reused (buffers kept) by its next forward of the same batch size: read what you need, run
/// the backward (as often as wanted: a checkpointed backward rewrites the hidden states with identical values), then forward again. Every (B·T, C) buffer holds image b in rows b·T .. b·T+T−1, row b·T being CLS.
/// </summary>
public sealed class TrainableClipPass
{
    readonly ClipVisionConfig c;
    internal TrainableClipPass(ClipVisionConfig config) => c = config;

    public int Batch { get; private set; }
    /// <summary>T = 1 + patches.</summary>
    public int Tokens => c.NumPositions;
    /// <summary>Encoder layers that ran: hidden_states[0 .. LayersRun] are available.</summary>
    public int LayersRun { get; private set; }
    /// <summary>The selected hidden_states index (0 = after pre_layrnorm, L = after the last layer).</summary>
    public int SelectedIndex { get; private set; }
    public bool HasPooled { get; private set; }
    /// <summary>Whether the layer activations were dropped (recomputed layer by layer in the backward).</summary>
    public bool Checkpointed { get; private set; }

    // hidden[i] = hidden_states[i] (B·T, C); hidden[0] = pre_layrnorm(embeddings).
    internal float[][] Hidden = [];
    internal float[] Embedded = [], Mean0 = [], Rstd0 = [];
    internal float[] Cols = [], PatchScratch = [];
    internal TrainableClipLayerActivations[] Layers = [];
    internal float[] Cls = [], PooledOut = [], MeanP = [], RstdP = [];

    internal void Prepare(int batch, int layersRun, int selected, bool pooled, bool checkpointed, int colsPerImage)
    {
        int rows = batch * c.NumPositions, n = rows * c.HiddenSize;
        if (batch != Batch)
        {
            Hidden = [];
            Embedded = new float[n]; Mean0 = new float[rows]; Rstd0 = new float[rows];
            Cols = new float[batch * colsPerImage]; PatchScratch = new float[batch * c.NumPatches * c.HiddenSize];
            Cls = new float[batch * c.HiddenSize]; PooledOut = new float[batch * c.HiddenSize]; MeanP = new float[batch]; RstdP = new float[batch];
            Layers = [];
        }
        if (Hidden.Length != layersRun + 1)
        {
            var h = new float[layersRun + 1][];
            for (int i = 0; i < h.Length; i++) h[i] = i < Hidden.Length ? Hidden[i] : new float[n];
            Hidden = h;
        }
        int sets = checkpointed ? Math.Min(1, layersRun) : layersRun;
        if (Layers.Length != sets)
        {
            var l = new TrainableClipLayerActivations[sets];
            for (int i = 0; i < sets; i++) l[i] = i < Layers.Length ? Layers[i] : new TrainableClipLayerActivations();
            Layers = l;
        }
        Batch = batch; LayersRun = layersRun; SelectedIndex = selected; HasPooled = pooled; Checkpointed = checkpointed;
    }

    /// <summary>
    /// hidden_states[index] (B·T, C), as transformers' output_hidden_states: 0 is the embeddings after pre_layrnorm,
    /// i the output of layer i; negative counts from the end of the full tower (−1 = last layer), as LLaVA's select layer.
    /// </summary>
    public ReadOnlySpan<float> HiddenState(int index)
    {
        int i = index < 0 ? c.NumLayers + 1 + index : index;
        if (i < 0 || i > LayersRun) throw new ArgumentOutOfRangeException(nameof(index), $"hidden state {index} was not computed (layers run: {LayersRun} of {c.NumLayers})");
        return Hidden[i];
    }

    /// <summary>The selected hidden state (B·T, C).</summary>
    public ReadOnlySpan<float> Selected => Hidden[SelectedIndex];

    /// <summary>One image's slice (T, C) of the selected hidden state.</summary>
    public ReadOnlySpan<float> SelectedImage(int b) => Selected.Slice(b * Tokens * c.HiddenSize, Tokens * c.HiddenSize);

    /// <summary>post_layernorm of each image's last-layer CLS row (B, C), as CLIPVisionModel's pooler_output.</summary>
    public ReadOnlySpan<float> Pooled => HasPooled ? PooledOut.AsSpan(0, Batch * c.HiddenSize) : throw new InvalidOperationException("forward ran without pooled output");

    /// <summary>Floats held by this pass (hidden states, embeddings, im2col, layer activations).</summary>
    public long Floats
    {
        get
        {
            long f = Embedded.Length + 2L * Mean0.Length + Cols.Length + PatchScratch.Length + Cls.Length + PooledOut.Length + 2L * MeanP.Length;
            foreach (var h in Hidden) f += h.Length;
            foreach (var l in Layers) f += l.Floats;
            return f;
        }
    }
}
