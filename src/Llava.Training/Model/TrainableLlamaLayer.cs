using System.Numerics.Tensors;
using Llava.Models.Llama;
using Llava.Tensors;
using Llava.Training.Optim;

namespace Llava.Training.Model;

/// <summary>
/// A LLaMA decoder layer with a backward pass: the forward of <see cref="LlamaDecoderLayer"/> over one whole
/// sequence (positions 0..T−1, causal), saving what the backward needs in <see cref="LayerActivations"/>; the
/// backward walks the same steps in reverse.
/// </summary>
public sealed class TrainableLlamaLayer
{
    readonly LlamaConfig c;
    public Parameter? InputNorm { get; }
    public Parameter? PostNorm { get; }
    readonly float[] inputNormFrozen, postNormFrozen;
    public TrainableLinear Q { get; }
    public TrainableLinear K { get; }
    public TrainableLinear V { get; }
    public TrainableLinear O { get; }
    public TrainableLinear Gate { get; }
    public TrainableLinear Up { get; }
    public TrainableLinear Down { get; }

    public TrainableLlamaLayer(LlamaConfig config, Parameter? inputNorm, float[] inputNormValues, Parameter? postNorm, float[] postNormValues,
        TrainableLinear q, TrainableLinear k, TrainableLinear v, TrainableLinear o, TrainableLinear gate, TrainableLinear up, TrainableLinear down)
    {
        c = config;
        InputNorm = inputNorm; PostNorm = postNorm;
        inputNormFrozen = inputNormValues; postNormFrozen = postNormValues;
        Q = q; K = k; V = v; O = o; Gate = gate; Up = up; Down = down;
    }

    ReadOnlySpan<float> InputNormW => InputNorm is not null ? InputNorm.Data : inputNormFrozen;
    ReadOnlySpan<float> PostNormW => PostNorm is not null ? PostNorm.Data : postNormFrozen;

    public IEnumerable<TrainableLinear> Linears => [Q, K, V, O, Gate, Up, Down];

    public IEnumerable<Parameter> Parameters()
    {
        if (InputNorm is not null) yield return InputNorm;
        foreach (var l in Linears.Take(4)) foreach (var p in l.Parameters()) yield return p;
        if (PostNorm is not null) yield return PostNorm;
        foreach (var l in Linears.Skip(4)) foreach (var p in l.Parameters()) yield return p;
    }

    /// <summary>The LoRA dropout key of linear <paramref name="slot"/> (0..6 = q, k, v, o, gate, up, down) under the layer's key.</summary>
    static ulong? SlotKey(ulong? key, int slot) => key is ulong k ? LoraAdapter.DeriveKey(k, (ulong)slot) : null;

    /// <summary>
    /// hidden (T, H) → layer output in place; <paramref name="a"/> receives the saved activations. <paramref name="dropoutKey"/>:
    /// the LoRA dropout key of this layer in this pass (null = no dropout); <see cref="Backward"/> must get the same.
    /// <paramref name="segments"/>: start rows of packed sequences (n + 1 offsets, the last = T) that attend only within
    /// themselves; null = one sequence. Every other step works row by row, so a pack is the same as its sequences one at a time.
    /// </summary>
    public void Forward(Span<float> hidden, int tokens, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, LayerActivations a, ulong? dropoutKey = null, int[]? segments = null)
    {
        int h = c.HiddenSize, qd = c.NumHeads * c.HeadDim, kvd = c.NumKvHeads * c.HeadDim, ff = c.IntermediateSize;
        a.Ensure(c, tokens);
        hidden[..(tokens * h)].CopyTo(a.Input);
        RmsNorm.Forward(a.Norm1, hidden[..(tokens * h)], InputNormW, tokens, h, c.RmsNormEps);
        Q.Forward(a.Q, a.Norm1, tokens, a.LoraHidden(0, tokens, Q), SlotKey(dropoutKey, 0));
        K.Forward(a.K, a.Norm1, tokens, a.LoraHidden(1, tokens, K), SlotKey(dropoutKey, 1));
        V.Forward(a.V, a.Norm1, tokens, a.LoraHidden(2, tokens, V), SlotKey(dropoutKey, 2));
        Rope.Apply(a.Q, cos, sin, tokens, c.NumHeads, c.HeadDim);
        Rope.Apply(a.K, cos, sin, tokens, c.NumKvHeads, c.HeadDim);
        segments ??= [0, tokens];
        for (int i = 0; i + 1 < segments.Length; i++)
        {
            int s0 = segments[i], n = segments[i + 1] - s0;
            Attention.Forward(a.Attn.AsSpan(s0 * qd, n * qd), a.Q.AsSpan(s0 * qd, n * qd), a.K.AsSpan(s0 * kvd, n * kvd), a.V.AsSpan(s0 * kvd, n * kvd),
                n, n, c.NumHeads, c.NumKvHeads, c.HeadDim, Scale, causal: true, queryOffset: 0);
        }
        var o = a.Tmp.AsSpan(0, tokens * h);
        O.Forward(o, a.Attn, tokens, a.LoraHidden(3, tokens, O), SlotKey(dropoutKey, 3));
        TensorPrimitives.Add(hidden[..(tokens * h)], o, hidden[..(tokens * h)]);
        hidden[..(tokens * h)].CopyTo(a.Mid);
        RmsNorm.Forward(a.Norm2, a.Mid, PostNormW, tokens, h, c.RmsNormEps);
        Gate.Forward(a.Gate, a.Norm2, tokens, a.LoraHidden(4, tokens, Gate), SlotKey(dropoutKey, 4));
        Up.Forward(a.Up, a.Norm2, tokens, a.LoraHidden(5, tokens, Up), SlotKey(dropoutKey, 5));
        a.Gate.AsSpan(0, tokens * ff).CopyTo(a.Act);
        Activations.SiluMul(a.Act.AsSpan(0, tokens * ff), a.Up.AsSpan(0, tokens * ff));
        Down.Forward(o, a.Act, tokens, a.LoraHidden(6, tokens, Down), SlotKey(dropoutKey, 6));
        TensorPrimitives.Add(hidden[..(tokens * h)], o, hidden[..(tokens * h)]);
    }

    float Scale => 1f / MathF.Sqrt(c.HeadDim);

    /// <summary>dHidden (T, H): gradient of the layer output in, gradient of the layer input out (in place). Same <paramref name="segments"/> as the forward.</summary>
    public void Backward(Span<float> dHidden, int tokens, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, LayerActivations a, LayerGradients g, ulong? dropoutKey = null, int[]? segments = null)
    {
        int h = c.HiddenSize, qd = c.NumHeads * c.HeadDim, kvd = c.NumKvHeads * c.HeadDim, ff = c.IntermediateSize;
        g.Ensure(c, tokens);
        var dH = dHidden[..(tokens * h)];

        // MLP: out = down(silu(gate)·up); residual passes dH through.
        var dAct = g.Ff1.AsSpan(0, tokens * ff); dAct.Clear();
        Down.Backward(dAct, dH, a.Act, tokens, a.LoraHidden(6, tokens, Down), SlotKey(dropoutKey, 6));
        var dGate = g.Ff2.AsSpan(0, tokens * ff); dGate.Clear();
        var dUp = g.Ff3.AsSpan(0, tokens * ff); dUp.Clear();
        Activations.SiluMulBackward(dGate, dUp, dAct, a.Gate.AsSpan(0, tokens * ff), a.Up.AsSpan(0, tokens * ff));
        var dNorm2 = g.H1.AsSpan(0, tokens * h); dNorm2.Clear();
        Gate.Backward(dNorm2, dGate, a.Norm2, tokens, a.LoraHidden(4, tokens, Gate), SlotKey(dropoutKey, 4));
        Up.Backward(dNorm2, dUp, a.Norm2, tokens, a.LoraHidden(5, tokens, Up), SlotKey(dropoutKey, 5));
        RmsNorm.Backward(dH, PostNorm is null ? default : PostNorm.Grad, dNorm2, a.Mid, PostNormW, tokens, h, c.RmsNormEps);

        // Attention: out = o_proj(attn(rope(q), rope(k), v)); residual passes dH through.
        var dAttn = g.Q1.AsSpan(0, tokens * qd); dAttn.Clear();
        O.Backward(dAttn, dH, a.Attn, tokens, a.LoraHidden(3, tokens, O), SlotKey(dropoutKey, 3));
        var dQ = g.Q2.AsSpan(0, tokens * qd); dQ.Clear();
        var dK = g.K1.AsSpan(0, tokens * kvd); dK.Clear();
        var dV = g.V1.AsSpan(0, tokens * kvd); dV.Clear();
        segments ??= [0, tokens];
        for (int i = 0; i + 1 < segments.Length; i++)
        {
            int s0 = segments[i], n = segments[i + 1] - s0;
            Attention.Backward(dQ.Slice(s0 * qd, n * qd), dK.Slice(s0 * kvd, n * kvd), dV.Slice(s0 * kvd, n * kvd), dAttn.Slice(s0 * qd, n * qd),
                a.Attn.AsSpan(s0 * qd, n * qd), a.Q.AsSpan(s0 * qd, n * qd), a.K.AsSpan(s0 * kvd, n * kvd), a.V.AsSpan(s0 * kvd, n * kvd),
                n, n, c.NumHeads, c.NumKvHeads, c.HeadDim, Scale, causal: true, queryOffset: 0);
        }
        Rope.Backward(dQ, cos, sin, tokens, c.NumHeads, c.HeadDim);
        Rope.Backward(dK, cos, sin, tokens, c.NumKvHeads, c.HeadDim);
        var dNorm1 = g.H1.AsSpan(0, tokens * h); dNorm1.Clear();
        Q.Backward(dNorm1, dQ, a.Norm1, tokens, a.LoraHidden(0, tokens, Q), SlotKey(dropoutKey, 0));
        K.Backward(dNorm1, dK, a.Norm1, tokens, a.LoraHidden(1, tokens, K), SlotKey(dropoutKey, 1));
        V.Backward(dNorm1, dV, a.Norm1, tokens, a.LoraHidden(2, tokens, V), SlotKey(dropoutKey, 2));
        RmsNorm.Backward(dH, InputNorm is null ? default : InputNorm.Grad, dNorm1, a.Input, InputNormW, tokens, h, c.RmsNormEps);
    }
}

/// <summary>What one layer's forward keeps for its backward, sized for T tokens (re-planned when T grows).</summary>
public sealed class LayerActivations
{
    public float[] Input = [], Norm1 = [], Q = [], K = [], V = [], Attn = [], Mid = [], Norm2 = [], Gate = [], Up = [], Act = [], Tmp = [];
    readonly float[][] lora = new float[7][];
    int tokens;

    public void Ensure(LlamaConfig c, int t)
    {
        if (t <= tokens) return;
        tokens = t;
        int h = c.HiddenSize, qd = c.NumHeads * c.HeadDim, kvd = c.NumKvHeads * c.HeadDim, ff = c.IntermediateSize;
        Input = new float[t * h]; Norm1 = new float[t * h]; Mid = new float[t * h]; Norm2 = new float[t * h]; Tmp = new float[t * h];
        Q = new float[t * qd]; Attn = new float[t * qd]; K = new float[t * kvd]; V = new float[t * kvd];
        Gate = new float[t * ff]; Up = new float[t * ff]; Act = new float[t * ff];
        Array.Clear(lora);
    }

    /// <summary>Buffer for a LoRA layer's A·x (null for layers without LoRA).</summary>
    public float[]? LoraHidden(int slot, int t, TrainableLinear linear)
    {
        if (linear.Lora is null) return null;
        int n = t * linear.Lora.Rank;
        if (lora[slot] is null || lora[slot].Length < n) lora[slot] = new float[n];
        return lora[slot];
    }
}

/// <summary>Gradient scratch of one layer's backward (shared by all layers).</summary>
public sealed class LayerGradients
{
    public float[] H1 = [], Q1 = [], Q2 = [], K1 = [], V1 = [], Ff1 = [], Ff2 = [], Ff3 = [];
    int tokens;

    public void Ensure(LlamaConfig c, int t)
    {
        if (t <= tokens) return;
        tokens = t;
        int h = c.HiddenSize, qd = c.NumHeads * c.HeadDim, kvd = c.NumKvHeads * c.HeadDim, ff = c.IntermediateSize;
        H1 = new float[t * h]; Q1 = new float[t * qd]; Q2 = new float[t * qd]; K1 = new float[t * kvd]; V1 = new float[t * kvd];
        Ff1 = new float[t * ff]; Ff2 = new float[t * ff]; Ff3 = new float[t * ff];
    }
}
