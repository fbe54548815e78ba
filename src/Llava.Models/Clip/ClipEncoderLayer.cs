using Llava.Formats;
using Llava.Models.Loading;
using Llava.Tensors;

namespace Llava.Models.Clip;

/// <summary>
/// One pre-LN CLIP encoder layer: h += out_proj(attn(layer_norm1(h))); h += fc2(act(fc1(layer_norm2(h)))).
/// Port of transformers' CLIPEncoderLayer (models/clip/modeling_clip.py). Attention is full (no mask).
/// </summary>
public sealed class ClipEncoderLayer
{
    readonly ClipVisionConfig config;
    readonly float[] ln1Weight, ln1Bias, ln2Weight, ln2Bias;       // (C)
    readonly WeightMatrix q, k, v, outProj;                         // (C, C)
    readonly float[] qBias, kBias, vBias, outBias;                  // (C)
    readonly WeightMatrix fc1;                                      // (I, C)
    readonly float[] fc1Bias;                                       // (I)
    readonly WeightMatrix fc2;                                      // (C, I)
    readonly float[] fc2Bias;                                       // (C)

    public ClipEncoderLayer(WeightReader r, string prefix, ClipVisionConfig c)
    {
        config = c;
        int h = c.HiddenSize, i = c.IntermediateSize;
        ln1Weight = r.Vector(prefix + "layer_norm1.weight", h);
        ln1Bias = r.Vector(prefix + "layer_norm1.bias", h);
        ln2Weight = r.Vector(prefix + "layer_norm2.weight", h);
        ln2Bias = r.Vector(prefix + "layer_norm2.bias", h);
        q = r.Matrix(prefix + "self_attn.q_proj.weight", h, h);
        k = r.Matrix(prefix + "self_attn.k_proj.weight", h, h);
        v = r.Matrix(prefix + "self_attn.v_proj.weight", h, h);
        outProj = r.Matrix(prefix + "self_attn.out_proj.weight", h, h);
        qBias = r.Vector(prefix + "self_attn.q_proj.bias", h);
        kBias = r.Vector(prefix + "self_attn.k_proj.bias", h);
        vBias = r.Vector(prefix + "self_attn.v_proj.bias", h);
        outBias = r.Vector(prefix + "self_attn.out_proj.bias", h);
        fc1 = r.Matrix(prefix + "mlp.fc1.weight", i, h);
        fc1Bias = r.Vector(prefix + "mlp.fc1.bias", i);
        fc2 = r.Matrix(prefix + "mlp.fc2.weight", h, i);
        fc2Bias = r.Vector(prefix + "mlp.fc2.bias", h);
    }

    /// <summary>Updates the residual stream <paramref name="hidden"/> (T, C) in place.</summary>
    public void Forward(Span<float> hidden, int tokens, ClipScratch s)
    {
        int c = config.HiddenSize, n = tokens * c;
        var norm = s.Norm.AsSpan(0, n);
        var qa = s.Q.AsSpan(0, n);
        var ka = s.K.AsSpan(0, n);
        var va = s.V.AsSpan(0, n);
        var attn = s.Attn.AsSpan(0, n);
        var mlp = s.Mlp.AsSpan(0, tokens * config.IntermediateSize);

        LayerNorm.Forward(norm, hidden, ln1Weight, ln1Bias, tokens, c, config.LayerNormEps);
        MatMul.Forward(qa, norm, q, qBias, tokens);
        MatMul.Forward(ka, norm, k, kBias, tokens);
        MatMul.Forward(va, norm, v, vBias, tokens);
        float scale = 1f / MathF.Sqrt(config.HeadDim);
        Attention.Forward(attn, qa, ka, va, tokens, tokens, config.NumHeads, config.NumHeads, config.HeadDim, scale, causal: false, queryOffset: 0);
        MatMul.Forward(norm, attn, outProj, outBias, tokens);
        System.Numerics.Tensors.TensorPrimitives.Add(hidden, norm, hidden);

        LayerNorm.Forward(norm, hidden, ln2Weight, ln2Bias, tokens, c, config.LayerNormEps);
        MatMul.Forward(mlp, norm, fc1, fc1Bias, tokens);
        ClipActivation.Apply(config.HiddenAct, mlp);
        MatMul.Forward(norm, mlp, fc2, fc2Bias, tokens);
        System.Numerics.Tensors.TensorPrimitives.Add(hidden, norm, hidden);
    }
}

/// <summary>Per-forward activation buffers of the CLIP tower, sized once for its token count.</summary>
public sealed class ClipScratch
{
    public readonly float[] Norm, Q, K, V, Attn, Mlp;

    public ClipScratch(ClipVisionConfig c, int tokens)
    {
        int n = tokens * c.HiddenSize;
        Norm = new float[n]; Q = new float[n]; K = new float[n]; V = new float[n]; Attn = new float[n];
        Mlp = new float[tokens * c.IntermediateSize];
    }
}

internal static class ClipActivation
{
    public static void Apply(string act, Span<float> x)
    {
        switch (act)
        {
            case "quick_gelu": Activations.QuickGelu(x); break;
            case "gelu": Activations.Gelu(x); break;
            default: throw new ModelFormatException($"CLIP hidden_act '{act}' is not supported (quick_gelu, gelu)");
        }
    }
}
