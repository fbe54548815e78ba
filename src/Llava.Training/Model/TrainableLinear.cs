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

    /// <summary>y (T, out) = x (T, in)·Wᵀ + b (+ LoRA). <paramref name="loraHidden"/> (T, r) keeps A·x for the backward.</summary>
    public void Forward(Span<float> y, ReadOnlySpan<float> x, int tokens, float[]? loraHidden = null)
    {
        MatMul.Forward(y, x, Matrix, BiasValues, tokens);
        if (Lora is { } l)
        {
            if (l.Dropout > 0) throw new NotSupportedException("LoRA dropout during the forward needs a mask; use TrainingStep's dropout path");
            var a = loraHidden ?? new float[tokens * l.Rank];
            MatMul.Forward(a, x, l.A.AsMatrix(l.Rank, In), default, tokens);
            var extra = new float[tokens * Out];
            MatMul.Forward(extra, a.AsSpan(0, tokens * l.Rank), l.B.AsMatrix(Out, l.Rank), default, tokens);
            TensorPrimitives.MultiplyAdd(extra, l.Scaling, y[..(tokens * Out)], y[..(tokens * Out)]);
        }
    }

    /// <summary>dX (T, in) += dY·W (if dX non-empty); dW, dB, LoRA grads += their terms.</summary>
    public void Backward(Span<float> dX, ReadOnlySpan<float> dY, ReadOnlySpan<float> x, int tokens, float[]? loraHidden = null)
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
            MatMul.BackwardWeight(l.A.Grad, dA, x, tokens, l.Rank, In);
            if (!dX.IsEmpty) MatMul.BackwardInput(dX, dA, l.A.AsMatrix(l.Rank, In), tokens);
        }
    }
}
