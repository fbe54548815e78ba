using System.Buffers;
using System.Numerics.Tensors;
using Llava.Tensors;
using Llava.Training.Optim;

namespace Llava.Training.Model;

/// <summary>
/// y = x·Wᵀ + b for training: W is a trainable f32 <see cref="Parameter"/> or a frozen (memory-mapped, any dtype)
/// matrix, optionally with a <see cref="LoraAdapter"/>. Backward accumulates into the parameters' gradients and
/// adds the input gradient into dX.
/// </summary>
public sealed class TrainableLinear
{
    public string Name { get; }
    public int In { get; }
    public int Out { get; }
    public Parameter? Weight { get; }
    public Parameter? Bias { get; }
    public LoraAdapter? Lora { get; set; }
    readonly WeightMatrix frozen;
    readonly float[]? frozenBias;

    public TrainableLinear(string name, int inFeatures, int outFeatures, Parameter? weight, WeightMatrix frozenWeight, Parameter? bias, float[]? frozenBias)
    {
        Name = name; In = inFeatures; Out = outFeatures;
        Weight = weight; Bias = bias;
        frozen = weight?.AsMatrix(outFeatures, inFeatures) ?? frozenWeight;
        this.frozenBias = frozenBias;
    }

    WeightMatrix Matrix => frozen;
    ReadOnlySpan<float> BiasValues => Bias is not null ? Bias.Data : frozenBias;

    public IEnumerable<Parameter> Parameters()
    {
        if (Weight is not null) yield return Weight;
        if (Bias is not null) yield return Bias;
        if (Lora is not null) { yield return Lora.A; yield return Lora.B; }
    }

    /// <summary>
    /// y (T, out) = x (T, in)·Wᵀ + b (+ LoRA). <paramref name="loraHidden"/> (T, r) keeps A·dropout(x) for the backward.
    /// <paramref name="dropoutKey"/>: the LoRA dropout mask's key in training (null = evaluation: no dropout); the backward
    /// must get the same key.
    /// </summary>
    public void Forward(Span<float> y, ReadOnlySpan<float> x, int tokens, float[]? loraHidden = null, ulong? dropoutKey = null)
    {
        // A quantized (QLoRA) base multiplies f32 activations by its exact dequantization, the function the backward differentiates.
        if (Matrix.IsQuantized) MatMul.ForwardDequantized(y, x, Matrix, BiasValues, tokens);
        else MatMul.Forward(y, x, Matrix, BiasValues, tokens);
        if (Lora is { } l)
        {
            var a = loraHidden ?? new float[tokens * l.Rank];
            float[]? dropped = null;
            if (Dropping(l, dropoutKey))
            {
                // PEFT: lora_B(lora_A(dropout(x))) · scaling; the base path keeps the undropped x.
                int n = tokens * In;
                dropped = ArrayPool<float>.Shared.Rent(n);
                LoraAdapter.DropoutScales(dropped.AsSpan(0, n), dropoutKey!.Value, l.Dropout);
                TensorPrimitives.Multiply(x[..n], dropped.AsSpan(0, n), dropped.AsSpan(0, n));
                x = dropped.AsSpan(0, n);
            }
            MatMul.Forward(a, x, l.A.AsMatrix(l.Rank, In), default, tokens);
            if (dropped is not null) ArrayPool<float>.Shared.Return(dropped);
            var extra = new float[tokens * Out];
            MatMul.Forward(extra, a.AsSpan(0, tokens * l.Rank), l.B.AsMatrix(Out, l.Rank), default, tokens);
            TensorPrimitives.MultiplyAdd(extra, l.Scaling, y[..(tokens * Out)], y[..(tokens * Out)]);
        }
    }

    static bool Dropping(LoraAdapter l, ulong? key) => l.Dropout > 0 && key is not null;

    /// <summary>dX (T, in) += dY·W (if dX non-empty); dW, dB, LoRA grads += their terms (with the forward's <paramref name="dropoutKey"/>).</summary>
    public void Backward(Span<float> dX, ReadOnlySpan<float> dY, ReadOnlySpan<float> x, int tokens, float[]? loraHidden = null, ulong? dropoutKey = null)
    {
        if (!dX.IsEmpty) MatMul.BackwardInput(dX, dY, Matrix, tokens);
        if (Weight is not null) MatMul.BackwardWeight(Weight.Grad, dY, x, tokens, Out, In);
        if (Bias is not null) MatMul.BackwardBias(Bias.Grad, dY, tokens, Out);
        if (Lora is { } l)
        {
            var a = loraHidden ?? throw new ArgumentException("LoRA backward needs the forward's A·x");
            var scaled = new float[tokens * Out];
            TensorPrimitives.Multiply(dY[..(tokens * Out)], l.Scaling, scaled);
            MatMul.BackwardWeight(l.B.Grad, scaled, a, tokens, Out, l.Rank);
            var dA = new float[tokens * l.Rank];
            MatMul.BackwardInput(dA, scaled, l.B.AsMatrix(Out, l.Rank), tokens);
            if (!Dropping(l, dropoutKey))
            {
                MatMul.BackwardWeight(l.A.Grad, dA, x, tokens, l.Rank, In);
                if (!dX.IsEmpty) MatMul.BackwardInput(dX, dA, l.A.AsMatrix(l.Rank, In), tokens);
                return;
            }
            // The same mask m as the forward: dA_w += dAᵀ·(x ⊙ m), dX += (dA·A) ⊙ m.
            int n = tokens * In;
            var mask = ArrayPool<float>.Shared.Rent(n);
            var tmp = ArrayPool<float>.Shared.Rent(n);
            try
            {
                var m = mask.AsSpan(0, n);
                var t = tmp.AsSpan(0, n);
                LoraAdapter.DropoutScales(m, dropoutKey!.Value, l.Dropout);
                TensorPrimitives.Multiply(x[..n], m, t);
                MatMul.BackwardWeight(l.A.Grad, dA, t, tokens, l.Rank, In);
                if (!dX.IsEmpty)
                {
                    t.Clear();
                    MatMul.BackwardInput(t, dA, l.A.AsMatrix(l.Rank, In), tokens);
                    TensorPrimitives.MultiplyAdd(t, m, dX[..n], dX[..n]);
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(mask);
                ArrayPool<float>.Shared.Return(tmp);
            }
        }
    }
}
