// Contract: self-attention (GQA, causal or full) forward and backward on sequences of up to MaxTokens, with the score matrix of one
// head materialized (tokens² floats) so every product is a GEMM; same results as Attention.Forward / Attention.Backward.
namespace Llava.Tensors;

/// <summary>
/// Attention for sequences short enough to hold one head's tokens × tokens scores (<see cref="MaxTokens"/>): training, the
/// CLIP tower (577 tokens, full attention) and a first prefill chunk.
/// The flash-style <see cref="Attention"/> computes each score as its own 64-float dot product, which at a few hundred
/// tokens costs more than the layer's linears; here, per head, S = scale·Q·Kᵀ, P = softmax(causal S) and O = P·V are three
/// GEMMs, and the backward recomputes P (nothing of size tokens² is kept between passes) and takes
/// dV += Pᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP − Δ) with Δ = rowsum(dO∘O), dQ += scale·dS·K, dK += scale·dSᵀ·Q, again as GEMMs.
/// Layouts as <see cref="Attention"/>: q and output (tokens, heads·headDim), k and v (tokens, kvHeads·headDim), queries and
/// keys at the same positions (causal: row t sees keys 0..t; else all). Reference: <see cref="ReferenceKernels.Attention"/> and its backward twin.
/// </summary>
public static unsafe class DenseAttention
{
    /// <summary>Longest sequence this path takes (its scratch is 3·tokens² floats); longer ones belong to <see cref="Attention"/>.</summary>
    public const int MaxTokens = 1024;

    public static void Forward(Span<float> output, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
                               int tokens, int heads, int kvHeads, int headDim, float scale, bool causal = true)
    {
        Check(tokens, heads, kvHeads, headDim);
        long qn = (long)tokens * heads * headDim, kn = (long)tokens * kvHeads * headDim;
        if (q.Length < qn || output.Length < qn || k.Length < kn || v.Length < kn) throw new ArgumentException("span shorter than its shape");
        if (tokens == 0) return;
        int d = headDim, t2 = tokens * tokens;
        var p = new float[t2];
        var qh = new float[tokens * d]; var kg = new float[tokens * d]; var vg = new float[tokens * d]; var oh = new float[tokens * d];
        int group = heads / kvHeads;
        for (int g = 0; g < kvHeads; g++)
        {
            Gather(kg, k, tokens, kvHeads * d, g * d, d);
            Gather(vg, v, tokens, kvHeads * d, g * d, d);
            for (int r = 0; r < group; r++)
            {
                int head = g * group + r;
                Gather(qh, q, tokens, heads * d, head * d, d);
                Probabilities(p, qh, kg, tokens, d, scale, causal);
                Array.Clear(oh);
                fixed (float* pv = vg) MatMul.BackwardInput(oh, p, new WeightMatrix(DType.F32, tokens, d, pv), tokens);   // O = P·V
                Scatter(output, oh, tokens, heads * d, head * d, d, add: false);
            }
        }
    }

    /// <summary>dQ, dK, dV += the gradients of <see cref="Forward"/> given dOut and the forward's output.</summary>
    public static void Backward(Span<float> dQ, Span<float> dK, Span<float> dV, ReadOnlySpan<float> dOut, ReadOnlySpan<float> output,
                                ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
                                int tokens, int heads, int kvHeads, int headDim, float scale, bool causal = true)
    {
        Check(tokens, heads, kvHeads, headDim);
        long qn = (long)tokens * heads * headDim, kn = (long)tokens * kvHeads * headDim;
        if (q.Length < qn || output.Length < qn || dOut.Length < qn || k.Length < kn || v.Length < kn
            || dQ.Length < qn || dK.Length < kn || dV.Length < kn) throw new ArgumentException("span shorter than its shape");
        if (tokens == 0) return;
        int d = headDim, t2 = tokens * tokens, group = heads / kvHeads;
        var p = new float[t2]; var ds = new float[t2];
        var qh = new float[tokens * d]; var kg = new float[tokens * d]; var vg = new float[tokens * d];
        var oh = new float[tokens * d]; var doh = new float[tokens * d]; var dqh = new float[tokens * d];
        var dkg = new float[tokens * d]; var dvg = new float[tokens * d];
        var delta = new float[tokens];
        for (int g = 0; g < kvHeads; g++)
        {
            Gather(kg, k, tokens, kvHeads * d, g * d, d);
            Gather(vg, v, tokens, kvHeads * d, g * d, d);
            Array.Clear(dkg); Array.Clear(dvg);
            for (int r = 0; r < group; r++)
            {
                int head = g * group + r;
                Gather(qh, q, tokens, heads * d, head * d, d);
                Gather(oh, output, tokens, heads * d, head * d, d);
                Gather(doh, dOut, tokens, heads * d, head * d, d);
                Probabilities(p, qh, kg, tokens, d, scale, causal);
                MatMul.BackwardWeight(dvg, p, doh, tokens, tokens, d);     // dV += Pᵀ·dO
                MatMul.ForwardNT(ds, doh, vg, tokens, tokens, d);          // dP = dO·Vᵀ
                for (int t = 0; t < tokens; t++) delta[t] = System.Numerics.Tensors.TensorPrimitives.Dot(doh.AsSpan(t * d, d), oh.AsSpan(t * d, d));
                fixed (float* pp = p, pds = ds)
                    for (int t = 0; t < tokens; t++)
                    {
                        // dS = scale·P∘(dP − Δ) on the visible keys; the masked ones have P = 0.
                        float* prow = pp + (long)t * tokens, drow = pds + (long)t * tokens;
                        float dl = delta[t];
                        int visible = causal ? t + 1 : tokens;
                        for (int j = 0; j < visible; j++) drow[j] = scale * prow[j] * (drow[j] - dl);
                        for (int j = visible; j < tokens; j++) drow[j] = 0;
                    }
                Array.Clear(dqh);
                fixed (float* pk = kg) MatMul.BackwardInput(dqh, ds, new WeightMatrix(DType.F32, tokens, d, pk), tokens);   // dQ = dS·K
                Scatter(dQ, dqh, tokens, heads * d, head * d, d, add: true);
                MatMul.BackwardWeight(dkg, ds, qh, tokens, tokens, d);     // dK += dSᵀ·Q
            }
            Scatter(dK, dkg, tokens, kvHeads * d, g * d, d, add: true);
            Scatter(dV, dvg, tokens, kvHeads * d, g * d, d, add: true);
        }
    }

    static void Check(int tokens, int heads, int kvHeads, int headDim)
    {
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0) throw new ArgumentException($"heads ({heads}) must be a positive multiple of kvHeads ({kvHeads})");
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(tokens, MaxTokens);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
    }

    /// <summary>p (tokens, tokens) = row softmax of scale·qh·kgᵀ over the keys row t sees (0..t when causal); zero beyond.</summary>
    static void Probabilities(float[] p, float[] qh, float[] kg, int tokens, int d, float scale, bool causal)
    {
        MatMul.ForwardNT(p, qh, kg, tokens, tokens, d);
        fixed (float* pp = p)
            for (int t = 0; t < tokens; t++)
            {
                float* row = pp + (long)t * tokens;
                int visible = causal ? t + 1 : tokens;
                System.Numerics.Tensors.TensorPrimitives.Multiply(new ReadOnlySpan<float>(row, visible), scale, new Span<float>(row, visible));
                Softmax.Row(row, visible);
                new Span<float>(row + visible, tokens - visible).Clear();
            }
    }

    static void Gather(float[] dst, ReadOnlySpan<float> src, int tokens, int stride, int offset, int d)
    {
        for (int t = 0; t < tokens; t++) src.Slice(t * stride + offset, d).CopyTo(dst.AsSpan(t * d, d));
    }

    static void Scatter(Span<float> dst, float[] src, int tokens, int stride, int offset, int d, bool add)
    {
        for (int t = 0; t < tokens; t++)
        {
            var to = dst.Slice(t * stride + offset, d);
            if (add) System.Numerics.Tensors.TensorPrimitives.Add(to, src.AsSpan(t * d, d), to);
            else src.AsSpan(t * d, d).CopyTo(to);
        }
    }
}
