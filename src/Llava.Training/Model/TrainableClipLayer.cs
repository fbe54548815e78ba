using System.Numerics.Tensors;
using Llava.Models.Clip;
using Llava.Tensors;
using Llava.Training.Optim;

namespace Llava.Training.Model;

/// <summary>
/// One pre-LN CLIP encoder layer with a backward (transformers' CLIPEncoderLayer, same math and kernels as
/// <see cref="ClipEncoderLayer"/>): mid = x + out_proj(attn(layer_norm1(x))); out = mid + fc2(act(fc1(layer_norm2(mid)))).
/// Rows are B images × T tokens; the linear layers and norms run over all B·T rows at once (rows never interact),
/// attention runs image by image (full, unmasked, within one image only).
/// </summary>
public sealed class TrainableClipLayer
{
    readonly ClipVisionConfig c;
    public Parameter Ln1Weight { get; }
    public Parameter Ln1Bias { get; }
    public Parameter Ln2Weight { get; }
    public Parameter Ln2Bias { get; }
    public TrainableLinear Q { get; }
    public TrainableLinear K { get; }
    public TrainableLinear V { get; }
    public TrainableLinear Out { get; }
    public TrainableLinear Fc1 { get; }
    public TrainableLinear Fc2 { get; }

    public TrainableClipLayer(ClipVisionConfig config, Parameter ln1Weight, Parameter ln1Bias, Parameter ln2Weight, Parameter ln2Bias,
        TrainableLinear q, TrainableLinear k, TrainableLinear v, TrainableLinear outProj, TrainableLinear fc1, TrainableLinear fc2)
    {
        if (config.HiddenAct is not ("quick_gelu" or "gelu")) throw new NotSupportedException($"CLIP hidden_act '{config.HiddenAct}' is not supported (quick_gelu, gelu)");
        c = config;
        Ln1Weight = ln1Weight; Ln1Bias = ln1Bias; Ln2Weight = ln2Weight; Ln2Bias = ln2Bias;
        Q = q; K = k; V = v; Out = outProj; Fc1 = fc1; Fc2 = fc2;
    }

    /// <summary>In transformers' named_parameters order (self_attn.{k,v,q,out}_proj, layer_norm1, mlp.fc1, mlp.fc2, layer_norm2).</summary>
    public IEnumerable<Parameter> Parameters()
    {
        foreach (var l in new[] { K, V, Q, Out }) foreach (var p in l.Parameters()) yield return p;
        yield return Ln1Weight; yield return Ln1Bias;
        foreach (var p in Fc1.Parameters()) yield return p;
        foreach (var p in Fc2.Parameters()) yield return p;
        yield return Ln2Weight; yield return Ln2Bias;
    }

    float Scale => 1f / MathF.Sqrt(c.HeadDim);

    /// <summary>input (B·T, C) → output (B·T, C) (must not alias input); <paramref name="a"/> receives what the backward needs.</summary>
    public void Forward(ReadOnlySpan<float> input, Span<float> output, int batch, TrainableClipLayerActivations a, TrainableClipWorkspace w)
    {
        int t = c.NumPositions, rows = batch * t, h = c.HiddenSize, n = rows * h, ni = rows * c.IntermediateSize;
        a.Ensure(c, rows);
        w.Ensure(c, rows);
        var x = input[..n];
        var norm1 = a.Norm1.AsSpan(0, n);
        var tmp = w.Tmp.AsSpan(0, n);
        LayerNorm.Forward(norm1, a.Mean1, a.Rstd1, x, Ln1Weight.Data, Ln1Bias.Data, rows, h, c.LayerNormEps);
        Q.Forward(a.Q, norm1, rows);
        K.Forward(a.K, norm1, rows);
        V.Forward(a.V, norm1, rows);
        TrainableClipAttention.Forward(a.Attn.AsSpan(0, n), a.Q, a.K, a.V, batch, t, c.NumHeads, c.HeadDim, Scale);
        Out.Forward(tmp, a.Attn, rows);
        var mid = a.Mid.AsSpan(0, n);
        TensorPrimitives.Add(x, tmp, mid);

        var norm2 = a.Norm2.AsSpan(0, n);
        LayerNorm.Forward(norm2, a.Mean2, a.Rstd2, mid, Ln2Weight.Data, Ln2Bias.Data, rows, h, c.LayerNormEps);
        var fc1 = a.Fc1.AsSpan(0, ni);
        Fc1.Forward(fc1, norm2, rows);
        var act = w.Act.AsSpan(0, ni);
        fc1.CopyTo(act);
        Activate(act);
        Fc2.Forward(tmp, act, rows);
        TensorPrimitives.Add(mid, tmp, output[..n]);
    }

    void Activate(Span<float> x)
    {
        if (c.HiddenAct == "quick_gelu") Activations.QuickGelu(x); else Activations.Gelu(x);
    }

    /// <summary>
    /// dHidden (B·T, C): gradient of the layer output in, gradient of the layer input out (in place). Parameter
    /// gradients accumulate. <paramref name="input"/> is the forward's input.
    /// </summary>
    public void Backward(Span<float> dHidden, ReadOnlySpan<float> input, int batch, TrainableClipLayerActivations a, TrainableClipWorkspace w)
    {
        int t = c.NumPositions, rows = batch * t, h = c.HiddenSize, n = rows * h, ni = rows * c.IntermediateSize;
        w.Ensure(c, rows);
        var dH = dHidden[..n];

        // MLP: out = mid + fc2(act(fc1(ln2(mid)))). The activation output is recomputed from fc1's output (not stored).
        var fc1 = a.Fc1.AsSpan(0, ni);
        var act = w.Act.AsSpan(0, ni);
        fc1.CopyTo(act);
        Activate(act);
        var dAct = w.DAct.AsSpan(0, ni); dAct.Clear();
        Fc2.Backward(dAct, dH, act, rows);
        var dFc1 = w.DFc1.AsSpan(0, ni); dFc1.Clear();
        if (c.HiddenAct == "quick_gelu") Activations.QuickGeluBackward(dFc1, dAct, fc1); else Activations.GeluBackward(dFc1, dAct, fc1);
        var dNorm = w.DNorm.AsSpan(0, n); dNorm.Clear();
        Fc1.Backward(dNorm, dFc1, a.Norm2, rows);
        LayerNorm.Backward(dH, Ln2Weight.Grad, Ln2Bias.Grad, dNorm, a.Mid, Ln2Weight.Data, a.Mean2, a.Rstd2, rows, h);

        // Attention: mid = x + out_proj(attn(q, k, v)), q/k/v = proj(ln1(x)).
        var dAttn = w.DAttn.AsSpan(0, n); dAttn.Clear();
        Out.Backward(dAttn, dH, a.Attn, rows);
        var dQ = w.DQ.AsSpan(0, n); dQ.Clear();
        var dK = w.DK.AsSpan(0, n); dK.Clear();
        var dV = w.DV.AsSpan(0, n); dV.Clear();
        TrainableClipAttention.Backward(dQ, dK, dV, dAttn, a.Attn, a.Q, a.K, a.V, batch, t, c.NumHeads, c.HeadDim, Scale);
        dNorm.Clear();
        Q.Backward(dNorm, dQ, a.Norm1, rows);
        K.Backward(dNorm, dK, a.Norm1, rows);
        V.Backward(dNorm, dV, a.Norm1, rows);
        LayerNorm.Backward(dH, Ln1Weight.Grad, Ln1Bias.Grad, dNorm, input[..n], Ln1Weight.Data, a.Mean1, a.Rstd1, rows, h);
    }
}

/// <summary>
/// What one layer's forward keeps for its backward, for R = B·T rows: 7 (R, C) buffers (ln1 output, q, k, v, attention
/// output, the residual after attention, ln2 output), fc1's output (R, I) and the two norms' mean/rstd (4 R).
/// The layer input is not copied: it is the previous hidden state, which the tower keeps anyway.
/// </summary>
public sealed class TrainableClipLayerActivations
{
    public float[] Norm1 = [], Q = [], K = [], V = [], Attn = [], Mid = [], Norm2 = [], Fc1 = [];
    public float[] Mean1 = [], Rstd1 = [], Mean2 = [], Rstd2 = [];
    int rows;

    public void Ensure(ClipVisionConfig c, int r)
    {
        if (r == rows) return;
        rows = r;
        int n = r * c.HiddenSize;
        Norm1 = new float[n]; Q = new float[n]; K = new float[n]; V = new float[n]; Attn = new float[n]; Mid = new float[n]; Norm2 = new float[n];
        Fc1 = new float[r * c.IntermediateSize];
        Mean1 = new float[r]; Rstd1 = new float[r]; Mean2 = new float[r]; Rstd2 = new float[r];
    }

    public long Floats => 7L * Norm1.Length + Fc1.Length + 4L * Mean1.Length;
}

/// <summary>Scratch shared by every layer's forward and backward (contents never outlive one call): 6 (R, C) and 3 (R, I) buffers.</summary>
public sealed class TrainableClipWorkspace
{
    public float[] Tmp = [], Act = [], DNorm = [], DAttn = [], DQ = [], DK = [], DV = [], DAct = [], DFc1 = [];
    int rows;

    public void Ensure(ClipVisionConfig c, int r)
    {
        if (r <= rows) return;
        rows = r;
        int n = r * c.HiddenSize, ni = r * c.IntermediateSize;
        Tmp = new float[n]; DNorm = new float[n]; DAttn = new float[n]; DQ = new float[n]; DK = new float[n]; DV = new float[n];
        Act = new float[ni]; DAct = new float[ni]; DFc1 = new float[ni];
    }

    public long Floats => (long)Tmp.Length * 6 + (long)Act.Length * 3;
}

/// <summary>
/// Full (unmasked) attention over a batch of independent images, (B·T, heads·headDim) each. Images with enough work
/// run one after the other with the kernel's own parallelism (query blocks × heads); when one image has too few
/// items to feed the workers (small T), the images themselves are spread over the workers and each runs its kernel
/// inline. Either way each image's result is computed the same way, so it never depends on the split.
/// </summary>
internal static unsafe class TrainableClipAttention
{
    static bool SplitImages(int batch, int tokens, int heads) => batch > 1 && (tokens + 15) / 16 * heads < 2 * Workers.ThreadCount;

    public static void Forward(Span<float> output, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int batch, int tokens, int heads, int headDim, float scale)
    {
        int n = tokens * heads * headDim;
        if (!SplitImages(batch, tokens, heads))
        {
            for (int b = 0; b < batch; b++)
                Attention.Forward(output.Slice(b * n, n), q.Slice(b * n, n), k.Slice(b * n, n), v.Slice(b * n, n), tokens, tokens, heads, heads, headDim, scale, causal: false, queryOffset: 0);
            return;
        }
        fixed (float* po = output) fixed (float* pq = q) fixed (float* pk = k) fixed (float* pv = v)
        {
            var job = new Job { O = po, Q = pq, K = pk, V = pv, Tokens = tokens, Heads = heads, HeadDim = headDim, Scale = scale };
            Workers.Run(ref job, batch);
        }
    }

    public static void Backward(Span<float> dQ, Span<float> dK, Span<float> dV, ReadOnlySpan<float> dOut, ReadOnlySpan<float> output,
        ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int batch, int tokens, int heads, int headDim, float scale)
    {
        int n = tokens * heads * headDim;
        if (!SplitImages(batch, tokens, heads))
        {
            for (int b = 0; b < batch; b++)
                Attention.Backward(dQ.Slice(b * n, n), dK.Slice(b * n, n), dV.Slice(b * n, n), dOut.Slice(b * n, n), output.Slice(b * n, n),
                    q.Slice(b * n, n), k.Slice(b * n, n), v.Slice(b * n, n), tokens, tokens, heads, heads, headDim, scale, causal: false, queryOffset: 0);
            return;
        }
        fixed (float* po = output) fixed (float* pq = q) fixed (float* pk = k) fixed (float* pv = v)
        fixed (float* pdq = dQ) fixed (float* pdk = dK) fixed (float* pdv = dV) fixed (float* pdo = dOut)
        {
            var job = new Job { O = po, Q = pq, K = pk, V = pv, DQ = pdq, DK = pdk, DV = pdv, DO = pdo, Tokens = tokens, Heads = heads, HeadDim = headDim, Scale = scale };
            Workers.Run(ref job, batch);
        }
    }

    struct Job : IParallelJob
    {
        public float* O, Q, K, V, DQ, DK, DV, DO; public int Tokens, Heads, HeadDim; public float Scale;

        public void Execute(int start, int end)
        {
            int n = Tokens * Heads * HeadDim;
            for (int b = start; b < end; b++)
            {
                long off = (long)b * n;
                if (DO == null)
                    Attention.Forward(new Span<float>(O + off, n), new ReadOnlySpan<float>(Q + off, n), new ReadOnlySpan<float>(K + off, n), new ReadOnlySpan<float>(V + off, n),
                        Tokens, Tokens, Heads, Heads, HeadDim, Scale, causal: false, queryOffset: 0);
                else
                    Attention.Backward(new Span<float>(DQ + off, n), new Span<float>(DK + off, n), new Span<float>(DV + off, n), new ReadOnlySpan<float>(DO + off, n),
                        new ReadOnlySpan<float>(O + off, n), new ReadOnlySpan<float>(Q + off, n), new ReadOnlySpan<float>(K + off, n), new ReadOnlySpan<float>(V + off, n),
                        Tokens, Tokens, Heads, Heads, HeadDim, Scale, causal: false, queryOffset: 0);
            }
        }
    }
}
