using Llava.Models.Loading;
using Llava.Tensors;

namespace Llava.Models.Llava;

/// <summary>
/// The vision→language connector: <c>linear</c>, or <c>mlpNx_gelu</c> = Linear, (GELU, Linear) × (N−1).
/// llava-hf names it multi_modal_projector.linear_{1,2}; LLaVA names it model.mm_projector.{0,2,4,...}
/// (nn.Sequential indices, GELUs at the odd ones) or model.mm_projector for a single linear.
/// </summary>
public sealed class LlavaProjector
{
    readonly WeightMatrix[] weights;   // layer j: (out, in)
    readonly float[][] biases;         // layer j: (out)
    readonly string act;
    readonly int inputSize;
    public int OutputSize { get; }

    LlavaProjector(WeightMatrix[] w, float[][] b, string act, int inputSize, int outputSize)
    {
        weights = w; biases = b; this.act = act; this.inputSize = inputSize; OutputSize = outputSize;
    }

    /// <summary>Tensor names of each linear layer for a layout.</summary>
    public static string[] LayerNames(CheckpointLayout layout, int depth, string originalPrefix = "model.mm_projector")
    {
        if (layout == CheckpointLayout.HuggingFace)
            return Enumerable.Range(1, depth).Select(i => $"multi_modal_projector.linear_{i}").ToArray();
        return depth == 1 ? [originalPrefix] : Enumerable.Range(0, depth).Select(i => $"{originalPrefix}.{2 * i}").ToArray();
    }

    public static LlavaProjector Load(WeightReader r, string[] names, int visionHidden, int textHidden, string act)
    {
        if (names.Length == 0)
        {
            if (visionHidden != textHidden) r.Problem($"identity projector needs equal widths, got {visionHidden} → {textHidden}");
            return new LlavaProjector([], [], act, visionHidden, visionHidden);
        }
        var w = new WeightMatrix[names.Length];
        var b = new float[names.Length][];
        for (int i = 0; i < names.Length; i++)
        {
            int inDim = i == 0 ? visionHidden : textHidden;
            w[i] = r.Matrix(names[i] + ".weight", textHidden, inDim);
            b[i] = r.Vector(names[i] + ".bias", textHidden);
        }
        if (act is not ("gelu" or "quick_gelu" or "silu" or "relu"))
            r.Problem($"projector activation '{act}' is not supported (gelu, quick_gelu, silu, relu)");
        return new LlavaProjector(w, b, act, visionHidden, textHidden);
    }

    /// <summary>features (N, Cv) → (N, Ct).</summary>
    public float[] Forward(ReadOnlySpan<float> features, int rows)
    {
        if (features.Length != rows * inputSize) throw new ArgumentException("feature size mismatch");
        if (weights.Length == 0) return features.ToArray();
        float[] x = features.ToArray();
        for (int i = 0; i < weights.Length; i++)
        {
            if (i > 0) ApplyAct(x);
            var y = new float[rows * OutputSize];
            MatMul.Forward(y, x, weights[i], biases[i], rows);
            x = y;
        }
        return x;
    }

    void ApplyAct(Span<float> x)
    {
        switch (act)
        {
            case "gelu": Activations.Gelu(x); break;
            case "quick_gelu": Activations.QuickGelu(x); break;
            case "silu": Activations.Silu(x); break;
            case "relu": for (int i = 0; i < x.Length; i++) x[i] = MathF.Max(x[i], 0); break;
        }
    }
}
