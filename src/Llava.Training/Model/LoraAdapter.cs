using Llava.Training.Optim;

namespace Llava.Training.Model;

/// <summary>
/// A LoRA pair on a linear layer (PEFT's lora.Linear): y += (alpha / r) · B · A · dropout(x), A: (r, in), B: (out, r).
/// PEFT initialises A with Kaiming-uniform and B with zeros, so training starts exactly at the base model.
/// Dropout (p = <see cref="Dropout"/>) acts on the LoRA branch's input only and only in training: each element of x is
/// zeroed with probability p and the rest scaled by 1 / (1 − p), as torch.nn.Dropout. The mask is a pure function of a
/// 64-bit key and the element index (<see cref="DropoutScales"/>), so the backward (and a gradient-checkpointing replay)
/// regenerates exactly the forward's mask instead of storing it.
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
        if (dropout is < 0 or >= 1 || float.IsNaN(dropout)) throw new ArgumentOutOfRangeException(nameof(dropout), dropout, "LoRA dropout must be in [0, 1)");
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

    /// <summary>
    /// The dropout mask as multipliers: scales[i] = 0 with probability <paramref name="p"/>, else 1 / (1 − p). Element i's draw is
    /// SplitMix64(key + i·φ) (24 bits compared with p·2²⁴), so any range of a mask can be regenerated independently.
    /// </summary>
    public static void DropoutScales(Span<float> scales, ulong key, float p)
    {
        float keep = 1f / (1f - p);
        ulong threshold = (ulong)Math.Round(p * (double)(1 << 24));
        for (int i = 0; i < scales.Length; i++)
            scales[i] = (SplitMix(key + (ulong)i * 0x9E3779B97F4A7C15UL) >> 40) < threshold ? 0f : keep;
    }

    /// <summary>Derives an independent key (per step, example, layer, linear) from <paramref name="key"/> and <paramref name="salt"/>.</summary>
    public static ulong DeriveKey(ulong key, ulong salt) => SplitMix(key ^ SplitMix(salt + 0x632BE59BD9B4E019UL));

    static ulong SplitMix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
