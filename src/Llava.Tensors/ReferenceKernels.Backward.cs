// Contract: plain scalar, single-threaded, f64-accumulating backward of every kernel — the spec the fast backward kernels are tested against.
namespace Llava.Tensors;

/// <summary>
/// Scalar twins of the backward kernels, same signatures and semantics (gradients accumulate into their buffers;
/// empty span = skip), written for clarity with f64 arithmetic so tests measure the fast kernels' f32 rounding only.
/// </summary>
public static class BackwardReference
{
    /// <summary>y = x·Wᵀ + b: dX += dY·W, dW += dYᵀ·x, dB += Σ_t dY. W is any WeightMatrix (read exactly widened).</summary>
    public static void MatMul(Span<float> dX, Span<float> dW, Span<float> dB, ReadOnlySpan<float> dY, ReadOnlySpan<float> x, WeightMatrix w, int tokens)
    {
        int n = w.Rows, k = w.Cols;
        if (!dX.IsEmpty)
            for (int t = 0; t < tokens; t++)
                for (int i = 0; i < k; i++)
                {
                    double s = dX[t * k + i];
                    for (int o = 0; o < n; o++) s += (double)dY[t * n + o] * w[o, i];
                    dX[t * k + i] = (float)s;
                }
        if (!dW.IsEmpty)
            for (int o = 0; o < n; o++)
                for (int i = 0; i < k; i++)
                {
                    double s = dW[o * k + i];
                    for (int t = 0; t < tokens; t++) s += (double)dY[t * n + o] * x[t * k + i];
                    dW[o * k + i] = (float)s;
                }
        if (!dB.IsEmpty)
            for (int o = 0; o < n; o++)
            {
                double s = dB[o];
                for (int t = 0; t < tokens; t++) s += dY[t * n + o];
                dB[o] = (float)s;
            }
    }

    /// <summary>RMSNorm backward (rstd recomputed in f64 from x).</summary>
    public static void RmsNorm(Span<float> dX, Span<float> dW, ReadOnlySpan<float> dY, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, int rows, int cols, float eps)
    {
        for (int r = 0; r < rows; r++)
        {
            double ss = 0;
            for (int i = 0; i < cols; i++) ss += (double)x[r * cols + i] * x[r * cols + i];
            double rs = 1.0 / Math.Sqrt(ss / cols + eps);
            double dot = 0;
            for (int i = 0; i < cols; i++) dot += (double)dY[r * cols + i] * weight[i] * x[r * cols + i];
            for (int i = 0; i < cols; i++)
            {
                int j = r * cols + i;
                if (!dX.IsEmpty) dX[j] = (float)(dX[j] + rs * dY[j] * weight[i] - rs * rs * rs * dot / cols * x[j]);
                if (!dW.IsEmpty) dW[i] = (float)(dW[i] + (double)dY[j] * x[j] * rs);
            }
        }
    }

    /// <summary>LayerNorm backward (mean and rstd recomputed in f64 from x).</summary>
    public static void LayerNorm(Span<float> dX, Span<float> dW, Span<float> dB, ReadOnlySpan<float> dY, ReadOnlySpan<float> x, ReadOnlySpan<float> weight,
                                 int rows, int cols, float eps)
    {
        var xh = new double[cols];
        for (int r = 0; r < rows; r++)
        {
            double mean = 0;
            for (int i = 0; i < cols; i++) mean += x[r * cols + i];
            mean /= cols;
            double var = 0;
            for (int i = 0; i < cols; i++) { double d = x[r * cols + i] - mean; var += d * d; }
            double rs = 1.0 / Math.Sqrt(var / cols + eps);
            double a = 0, b = 0;
            for (int i = 0; i < cols; i++)
            {
                xh[i] = (x[r * cols + i] - mean) * rs;
                double g = (double)dY[r * cols + i] * weight[i];
                a += g; b += g * xh[i];
            }
            a /= cols; b /= cols;
            for (int i = 0; i < cols; i++)
            {
                int j = r * cols + i;
                if (!dX.IsEmpty) dX[j] = (float)(dX[j] + rs * ((double)dY[j] * weight[i] - a - xh[i] * b));
                if (!dW.IsEmpty) dW[i] = (float)(dW[i] + dY[j] * xh[i]);
                if (!dB.IsEmpty) dB[i] = (float)(dB[i] + dY[j]);
            }
        }
    }

    /// <summary>Row-wise softmax backward from the output y: dX += y ⊙ (dY − ⟨y, dY⟩).</summary>
    public static void Softmax(Span<float> dX, ReadOnlySpan<float> dY, ReadOnlySpan<float> y, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            double s = 0;
            for (int i = 0; i < cols; i++) s += (double)y[r * cols + i] * dY[r * cols + i];
            for (int i = 0; i < cols; i++) dX[r * cols + i] = (float)(dX[r * cols + i] + y[r * cols + i] * (dY[r * cols + i] - s));
        }
    }

    /// <summary>RoPE backward in place: rotation by −θ.</summary>
    public static void Rope(Span<float> grad, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, int tokens, int heads, int headDim)
    {
        int half = headDim / 2;
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                int b = (t * heads + h) * headDim;
                for (int i = 0; i < half; i++)
                {
                    double g1 = grad[b + i], g2 = grad[b + i + half], c = cos[t * half + i], s = sin[t * half + i];
                    grad[b + i] = (float)(g1 * c + g2 * s);
                    grad[b + i + half] = (float)(g2 * c - g1 * s);
                }
            }
    }

    /// <summary>dX += dY · gelu'(x) (exact erf GELU).</summary>
    public static void Gelu(Span<float> dX, ReadOnlySpan<float> dY, ReadOnlySpan<float> x)
    {
        for (int i = 0; i < dX.Length; i++)
        {
            double v = x[i];
            double d = 0.5 * (1 + ReferenceKernels.Erf(v / Math.Sqrt(2))) + v * Math.Exp(-0.5 * v * v) / Math.Sqrt(2 * Math.PI);
            dX[i] = (float)(dX[i] + dY[i] * d);
        }
    }

    /// <summary>dX += dY · d/dx [x·sigmoid(1.702 x)].</summary>
    public static void QuickGelu(Span<float> dX, ReadOnlySpan<float> dY, ReadOnlySpan<float> x)
    {
        for (int i = 0; i < dX.Length; i++)
        {
            double z = 1.702 * x[i], s = 1 / (1 + Math.Exp(-z));
            dX[i] = (float)(dX[i] + dY[i] * (s + z * s * (1 - s)));
        }
    }

    /// <summary>dX += dY · silu'(x).</summary>
    public static void Silu(Span<float> dX, ReadOnlySpan<float> dY, ReadOnlySpan<float> x)
    {
        for (int i = 0; i < dX.Length; i++)
        {
            double v = x[i], s = 1 / (1 + Math.Exp(-v));
            dX[i] = (float)(dX[i] + dY[i] * s * (1 + v * (1 - s)));
        }
    }

    /// <summary>out = silu(gate)·up: dGate += dY·up·silu'(gate), dUp += dY·silu(gate).</summary>
    public static void SiluMul(Span<float> dGate, Span<float> dUp, ReadOnlySpan<float> dY, ReadOnlySpan<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < dY.Length; i++)
        {
            double g = gate[i], s = 1 / (1 + Math.Exp(-g));
            if (!dGate.IsEmpty) dGate[i] = (float)(dGate[i] + dY[i] * up[i] * s * (1 + g * (1 - s)));
            if (!dUp.IsEmpty) dUp[i] = (float)(dUp[i] + dY[i] * g * s);
        }
    }

    /// <summary>dTable[ids[i]] += dY[i].</summary>
    public static void Embedding(Span<float> dTable, ReadOnlySpan<float> dY, ReadOnlySpan<int> ids, int rows, int cols)
    {
        foreach (int id in ids)
            if ((uint)id >= (uint)rows) throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} out of range [0, {rows})");
        for (int i = 0; i < ids.Length; i++)
            for (int c = 0; c < cols; c++) dTable[ids[i] * cols + c] += dY[i * cols + c];
    }

    /// <summary>Attention backward with explicit f64 probabilities (O(kvLen) per row).</summary>
    public static void Attention(Span<float> dQ, Span<float> dK, Span<float> dV, ReadOnlySpan<float> dOut,
                                 ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
                                 int tokens, int kvLen, int heads, int kvHeads, int headDim, float scale, bool causal, int queryOffset)
    {
        int group = heads / kvHeads;
        var p = new double[kvLen];
        var dp = new double[kvLen];
        var o = new double[headDim];
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                int g = h / group, qo = (t * heads + h) * headDim;
                int visible = causal ? Math.Clamp(queryOffset + t + 1, 0, kvLen) : kvLen;
                if (visible == 0) continue;
                double max = double.NegativeInfinity;
                for (int j = 0; j < visible; j++)
                {
                    double s = 0;
                    for (int d = 0; d < headDim; d++) s += (double)q[qo + d] * k[(j * kvHeads + g) * headDim + d];
                    p[j] = s * scale;
                    max = Math.Max(max, p[j]);
                }
                double sum = 0;
                for (int j = 0; j < visible; j++) { p[j] = Math.Exp(p[j] - max); sum += p[j]; }
                for (int j = 0; j < visible; j++) p[j] /= sum;
                Array.Clear(o);
                for (int j = 0; j < visible; j++)
                    for (int d = 0; d < headDim; d++) o[d] += p[j] * v[(j * kvHeads + g) * headDim + d];
                double delta = 0;
                for (int d = 0; d < headDim; d++) delta += dOut[qo + d] * o[d];
                for (int j = 0; j < visible; j++)
                {
                    int ko = (j * kvHeads + g) * headDim;
                    double dpj = 0;
                    for (int d = 0; d < headDim; d++) dpj += (double)dOut[qo + d] * v[ko + d];
                    double ds = p[j] * (dpj - delta) * scale;
                    for (int d = 0; d < headDim; d++)
                    {
                        if (!dQ.IsEmpty) dQ[qo + d] = (float)(dQ[qo + d] + ds * k[ko + d]);
                        if (!dK.IsEmpty) dK[ko + d] = (float)(dK[ko + d] + ds * q[qo + d]);
                        if (!dV.IsEmpty) dV[ko + d] = (float)(dV[ko + d] + p[j] * dOut[qo + d]);
                    }
                }
            }
    }

    /// <summary>Summed cross-entropy over supervised rows (f64) and their count.</summary>
    public static double CrossEntropy(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, int rows, int vocab, out int count)
    {
        double total = 0;
        count = 0;
        for (int r = 0; r < rows; r++)
        {
            if (labels[r] == Tensors.CrossEntropy.IgnoreIndex) continue;
            double max = double.NegativeInfinity;
            for (int i = 0; i < vocab; i++) max = Math.Max(max, logits[r * vocab + i]);
            double sum = 0;
            for (int i = 0; i < vocab; i++) sum += Math.Exp(logits[r * vocab + i] - max);
            total += Math.Log(sum) + max - logits[r * vocab + labels[r]];
            count++;
        }
        return total;
    }

    /// <summary>dLogits = (softmax − onehot)·scale on supervised rows, 0 on ignored rows (written).</summary>
    public static void CrossEntropyBackward(Span<float> dLogits, ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, int rows, int vocab, float scale)
    {
        for (int r = 0; r < rows; r++)
        {
            var d = dLogits.Slice(r * vocab, vocab);
            if (labels[r] == Tensors.CrossEntropy.IgnoreIndex) { d.Clear(); continue; }
            double max = double.NegativeInfinity;
            for (int i = 0; i < vocab; i++) max = Math.Max(max, logits[r * vocab + i]);
            double sum = 0;
            for (int i = 0; i < vocab; i++) sum += Math.Exp(logits[r * vocab + i] - max);
            for (int i = 0; i < vocab; i++)
                d[i] = (float)((Math.Exp(logits[r * vocab + i] - max) / sum - (i == labels[r] ? 1 : 0)) * scale);
        }
    }
}
