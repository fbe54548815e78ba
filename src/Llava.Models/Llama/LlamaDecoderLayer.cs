using System.Numerics.Tensors;
using Llava.Models.Loading;
using Llava.Tensors;

namespace Llava.Models.Llama;

/// <summary>
/// One LLaMA decoder layer (transformers' LlamaDecoderLayer): h += o_proj(attn(rope(q), rope(k), v)) on
/// input_layernorm(h); h += down(silu(gate(x)) · up(x)) on post_attention_layernorm(h). Grouped-query
/// attention: kv heads are shared by heads / kvHeads query heads. K and V are written straight into an f32 cache, or
/// rounded into an f16 one (llama.cpp's default cache type).
/// </summary>
public sealed class LlamaDecoderLayer
{
    readonly LlamaConfig config;
    readonly int index;
    readonly float[] inputNorm, postNorm;                  // (H)
    readonly WeightMatrix q, k, v, o;                      // q: (heads·d, H), k/v: (kvHeads·d, H), o: (H, heads·d)
    readonly float[]? qBias, kBias, vBias, oBias;          // present when attention_bias = true
    readonly WeightMatrix gate, up, down;                  // gate/up: (I, H), down: (H, I)

    public LlamaDecoderLayer(WeightReader r, string prefix, LlamaConfig c, int index)
    {
        config = c;
        this.index = index;
        int h = c.HiddenSize, qd = c.NumHeads * c.HeadDim, kvd = c.NumKvHeads * c.HeadDim, i = c.IntermediateSize;
        inputNorm = r.Vector(prefix + "input_layernorm.weight", h);
        postNorm = r.Vector(prefix + "post_attention_layernorm.weight", h);
        q = r.Matrix(prefix + "self_attn.q_proj.weight", qd, h);
        k = r.Matrix(prefix + "self_attn.k_proj.weight", kvd, h);
        v = r.Matrix(prefix + "self_attn.v_proj.weight", kvd, h);
        o = r.Matrix(prefix + "self_attn.o_proj.weight", h, qd);
        qBias = r.OptionalVector(prefix + "self_attn.q_proj.bias", qd);
        kBias = r.OptionalVector(prefix + "self_attn.k_proj.bias", kvd);
        vBias = r.OptionalVector(prefix + "self_attn.v_proj.bias", kvd);
        oBias = r.OptionalVector(prefix + "self_attn.o_proj.bias", h);
        gate = r.Matrix(prefix + "mlp.gate_proj.weight", i, h);
        up = r.Matrix(prefix + "mlp.up_proj.weight", i, h);
        down = r.Matrix(prefix + "mlp.down_proj.weight", h, i);
    }

    /// <summary>The layer's weight matrices (q, k, v, o, gate, up, down).</summary>
    internal WeightMatrix[] Matrices => [q, k, v, o, gate, up, down];

    /// <summary>Updates hidden (T, H) in place; positions [start, start+T) are written to the cache.</summary>
    public void Forward(Span<float> hidden, int tokens, int start, KvCache cache, LlamaScratch s)
    {
        var c = config;
        int h = c.HiddenSize, qd = c.NumHeads * c.HeadDim, half = c.HeadDim / 2;
        var norm = s.Norm.AsSpan(0, tokens * h);
        var qa = s.Q.AsSpan(0, tokens * qd);
        var attn = s.Attn.AsSpan(0, tokens * qd);
        var outp = s.Out.AsSpan(0, tokens * h);
        var cos = s.Cos.AsSpan(0, tokens * half);
        var sin = s.Sin.AsSpan(0, tokens * half);
        // An f32 cache is written in place; for an f16 cache the new rows are computed (and rotated) in f32, then rounded in.
        bool f16 = cache.Type == KvCacheType.F16;
        int kvd = c.NumKvHeads * c.HeadDim;
        var keySlot = f16 ? s.K.AsSpan(0, tokens * kvd) : cache.KeySlot(index, start, tokens);
        var valueSlot = f16 ? s.V.AsSpan(0, tokens * kvd) : cache.ValueSlot(index, start, tokens);

        RmsNorm.Forward(norm, hidden, inputNorm, tokens, h, c.RmsNormEps);
        MatMul.Forward(qa, norm, q, qBias, tokens);
        MatMul.Forward(keySlot, norm, k, kBias, tokens);
        MatMul.Forward(valueSlot, norm, v, vBias, tokens);
        if (c.RopeInterleaved)
        {
            Rope.ApplyInterleaved(qa, cos, sin, tokens, c.NumHeads, c.HeadDim);
            Rope.ApplyInterleaved(keySlot, cos, sin, tokens, c.NumKvHeads, c.HeadDim);
        }
        else
        {
            Rope.Apply(qa, cos, sin, tokens, c.NumHeads, c.HeadDim);
            Rope.Apply(keySlot, cos, sin, tokens, c.NumKvHeads, c.HeadDim);
        }

        int kvLen = start + tokens;
        float scale = 1f / MathF.Sqrt(c.HeadDim);
        if (f16)
        {
            cache.Write(index, start, tokens, keySlot, valueSlot);
            Attention.ForwardF16Kv(attn, qa, cache.KeysF16(index, kvLen), cache.ValuesF16(index, kvLen),
                tokens, kvLen, c.NumHeads, c.NumKvHeads, c.HeadDim, scale, causal: true, queryOffset: start);
        }
        else
            Attention.Forward(attn, qa, cache.Keys(index, kvLen), cache.Values(index, kvLen),
                tokens, kvLen, c.NumHeads, c.NumKvHeads, c.HeadDim, scale, causal: true, queryOffset: start);
        MatMul.Forward(outp, attn, o, oBias, tokens);
        TensorPrimitives.Add(hidden, outp, hidden);

        var g = s.Gate.AsSpan(0, tokens * c.IntermediateSize);
        var u = s.Up.AsSpan(0, tokens * c.IntermediateSize);
        RmsNorm.Forward(norm, hidden, postNorm, tokens, h, c.RmsNormEps);
        MatMul.Forward(g, norm, gate, default, tokens);
        MatMul.Forward(u, norm, up, default, tokens);
        Activations.SiluMul(g, u);
        MatMul.Forward(outp, g, down, default, tokens);
        TensorPrimitives.Add(hidden, outp, hidden);
    }
}
