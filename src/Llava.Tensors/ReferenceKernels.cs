// Contract: plain scalar, single-threaded loops for every kernel — the algorithmic spec the fast kernels are tested against.
namespace Llava.Tensors;

/// <summary>
/// Reference implementations: no intrinsics, no threads, written for clarity. Sums accumulate in double so the
/// reference is (nearly) exact and test tolerances measure the fast kernels' f32 rounding only.
/// </summary>
public static class ReferenceKernels
{
    /// <summary>y[t, o] = Σ_i x[t, i] · W[o, i] (+ bias[o]).</summary>
    public static void MatMul(Span<float> y, ReadOnlySpan<float> x, WeightMatrix w, ReadOnlySpan<float> bias, int tokens)
    {
        int n = w.Rows, k = w.Cols;
        for (int t = 0; t < tokens; t++)
            for (int o = 0; o < n; o++)
            {
                double s = bias.IsEmpty ? 0 : bias[o];
                for (int i = 0; i < k; i++) s += (double)x[t * k + i] * w[o, i];
                y[t * n + o] = (float)s;
            }
    }

    /// <summary>c (m x n) = a (m x k) · bᵀ with b (n x k); adds to c when <paramref name="accumulate"/>.</summary>
    public static void MatMulNT(Span<float> c, ReadOnlySpan<float> a, ReadOnlySpan<float> b, int m, int n, int k, bool accumulate = false)
    {
        for (int r = 0; r < m; r++)
            for (int j = 0; j < n; j++)
            {
                double s = accumulate ? c[r * n + j] : 0;
                for (int i = 0; i < k; i++) s += (double)a[r * k + i] * b[j * k + i];
                c[r * n + j] = (float)s;
            }
    }

    /// <summary>LLaMA RMSNorm: y = x · 1/sqrt(mean(x²) + eps) · w.</summary>
    public static void RmsNorm(Span<float> y, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, int rows, int cols, float eps)
    {
        for (int r = 0; r < rows; r++)
        {
            double ss = 0;
            for (int i = 0; i < cols; i++) ss += (double)x[r * cols + i] * x[r * cols + i];
            double inv = 1.0 / Math.Sqrt(ss / cols + eps);
            for (int i = 0; i < cols; i++) y[r * cols + i] = (float)(x[r * cols + i] * inv * weight[i]);
        }
    }

    /// <summary>LayerNorm with biased variance: y = (x - mean) / sqrt(var + eps) · w + b.</summary>
    public static void LayerNorm(Span<float> y, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, int rows, int cols, float eps)
    {
        for (int r = 0; r < rows; r++)
        {
            double mean = 0;
            for (int i = 0; i < cols; i++) mean += x[r * cols + i];
            mean /= cols;
            double var = 0;
            for (int i = 0; i < cols; i++) { double d = x[r * cols + i] - mean; var += d * d; }
            var /= cols;
            double inv = 1.0 / Math.Sqrt(var + eps);
            for (int i = 0; i < cols; i++) y[r * cols + i] = (float)((x[r * cols + i] - mean) * inv * weight[i] + bias[i]);
        }
    }

    /// <summary>Row-wise softmax in place: exp(x - max) / Σ exp(x - max). A row of all -inf becomes NaN (as torch).</summary>
    public static void Softmax(Span<float> x, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            var row = x.Slice(r * cols, cols);
            double max = double.NegativeInfinity;
            bool nan = false;
            foreach (float v in row) { if (float.IsNaN(v)) nan = true; else if (v > max) max = v; }
            if (nan) max = double.NaN;
            double sum = 0;
            for (int i = 0; i < cols; i++) sum += Math.Exp(row[i] - max);
            for (int i = 0; i < cols; i++) row[i] = (float)(Math.Exp(row[i] - max) / sum);
        }
    }

    /// <summary>Error function in double (libm-quality); the reference for <see cref="Activations"/>' float erf.</summary>
    public static double Erf(double x) => ErfDouble(x);

    /// <summary>Exact GELU: 0.5 x (1 + erf(x/√2)).</summary>
    public static void Gelu(Span<float> x)
    {
        for (int i = 0; i < x.Length; i++) x[i] = (float)(0.5 * x[i] * (1 + ErfDouble(x[i] / Math.Sqrt(2))));
    }

    /// <summary>CLIP quick_gelu: x · sigmoid(1.702 x).</summary>
    public static void QuickGelu(Span<float> x)
    {
        for (int i = 0; i < x.Length; i++) x[i] = (float)(x[i] / (1 + Math.Exp(-1.702 * x[i])));
    }

    /// <summary>SiLU: x · sigmoid(x) = x / (1 + exp(-x)).</summary>
    public static void Silu(Span<float> x)
    {
        for (int i = 0; i < x.Length; i++) x[i] = (float)(x[i] / (1 + Math.Exp(-(double)x[i])));
    }

    /// <summary>gate = silu(gate) · up.</summary>
    public static void SiluMul(Span<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < gate.Length; i++) gate[i] = (float)(gate[i] / (1 + Math.Exp(-(double)gate[i])) * up[i]);
    }

    /// <summary>HF LLaMA rotate_half RoPE; x: (tokens, heads, headDim), cos/sin: (tokens, headDim/2).</summary>
    public static void Rope(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, int tokens, int heads, int headDim)
    {
        int half = headDim / 2;
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                int b = (t * heads + h) * headDim;
                for (int i = 0; i < half; i++)
                {
                    double x1 = x[b + i], x2 = x[b + i + half], c = cos[t * half + i], s = sin[t * half + i];
                    x[b + i] = (float)(x1 * c - x2 * s);
                    x[b + i + half] = (float)(x2 * c + x1 * s);
                }
            }
    }

    /// <summary>Scaled dot-product attention with grouped-query heads; see <see cref="Tensors.Attention.Forward"/>.</summary>
    public static void Attention(Span<float> output, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
                                 int tokens, int kvLen, int heads, int kvHeads, int headDim, float scale, bool causal, int queryOffset)
    {
        int group = heads / kvHeads;
        var scores = new double[kvLen];
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                int g = h / group;
                int visible = causal ? Math.Clamp(queryOffset + t + 1, 0, kvLen) : kvLen;
                double max = double.NegativeInfinity;
                for (int j = 0; j < visible; j++)
                {
                    double s = 0;
                    for (int d = 0; d < headDim; d++) s += (double)q[(t * heads + h) * headDim + d] * k[(j * kvHeads + g) * headDim + d];
                    scores[j] = s * scale;
                    max = double.IsNaN(scores[j]) || double.IsNaN(max) ? double.NaN : Math.Max(max, scores[j]);
                }
                double sum = 0;
                for (int j = 0; j < visible; j++) { scores[j] = Math.Exp(scores[j] - max); sum += scores[j]; }
                for (int d = 0; d < headDim; d++)
                {
                    double acc = 0;
                    for (int j = 0; j < visible; j++) acc += scores[j] * v[(j * kvHeads + g) * headDim + d];
                    // No visible key: 0/0 = NaN, like torch's softmax over an all -inf row.
                    output[(t * heads + h) * headDim + d] = (float)(acc / sum);
                }
            }
    }

    /// <summary>y[i, :] = table[ids[i], :].</summary>
    public static void Embedding(Span<float> y, WeightMatrix table, ReadOnlySpan<int> ids)
    {
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= (uint)table.Rows)
                throw new ArgumentOutOfRangeException(nameof(ids), ids[i], $"token id {ids[i]} out of range [0, {table.Rows})");
            for (int c = 0; c < table.Cols; c++) y[i * table.Cols + c] = table[ids[i], c];
        }
    }

    /// <summary>y += x.</summary>
    public static void Add(Span<float> y, ReadOnlySpan<float> x)
    {
        for (int i = 0; i < y.Length; i++) y[i] += x[i];
    }

    // erf in double: Taylor series for |x| < 2.5 (converges fast, terms alternate but stay < 1e2 so
    // ~1e-15 absolute error), continued fraction for erfc beyond (Lentz), where erfc is tiny.
    static double ErfDouble(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        double ax = Math.Abs(x);
        if (ax < 2.5)
        {
            // erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1))
            double term = ax, sum = ax, x2 = ax * ax;
            for (int n = 1; n < 200; n++)
            {
                term *= -x2 / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
            }
            return Math.CopySign(sum * 2 / Math.Sqrt(Math.PI), x);
        }
        if (ax > 27) return Math.CopySign(1.0, x);
        // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + 2/(x + ...))))) evaluated with modified Lentz.
        double tiny = 1e-300, f = ax, c = ax, d = 0;
        for (int n = 1; n < 500; n++)
        {
            double an = n * 0.5;
            d = ax + an * d; if (Math.Abs(d) < tiny) d = tiny; d = 1 / d;
            c = ax + an / c; if (Math.Abs(c) < tiny) c = tiny;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1) < 1e-16) break;
        }
        double erfc = Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / f;
        return Math.CopySign(1 - erfc, x);
    }
}
