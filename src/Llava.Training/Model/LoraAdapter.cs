using Llava.Training.Optim;

namespace Llava.Training.Model;

/// <summary>
/// A LoRA pair on a linear layer (PEFT's lora.Linear): y += (alpha / r) · B · A · dropout(x), A: (r, in), B: (out, r).
/// PEFT initialises A with Kaiming-uniform and B with zeros, so training starts exactly at the base model.
/// </summary>
public sealed class LoraAdapter
{
    public Parameter A { get; }
    public Parameter B { get; }
    public int Rank { get; }
    public float Scaling { get; }
    public float Dropout { get; }

    public LoraAdapter(Parameter a, Parameter b, int rank, float alpha, float dropout)
    {
        A = a; B = b; Rank = rank; Scaling = alpha / rank; Dropout = dropout;
    }

    /// <summary>PEFT's default init: A ~ U(−1/√in, 1/√in) (kaiming_uniform with a = √5), B = 0.</summary>
    public static LoraAdapter Create(string baseName, int inFeatures, int outFeatures, int rank, float alpha, float dropout, Random rng)
    {
        var a = new float[rank * inFeatures];
        double bound = 1 / Math.Sqrt(inFeatures);
        for (int i = 0; i < a.Length; i++) a[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
        return new LoraAdapter(new Parameter(baseName + ".lora_A.weight", [rank, inFeatures], a),
            new Parameter(baseName + ".lora_B.weight", [outFeatures, rank], new float[outFeatures * rank]), rank, alpha, dropout);
    }
}
