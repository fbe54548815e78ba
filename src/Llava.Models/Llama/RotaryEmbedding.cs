namespace Llava.Models.Llama;

/// <summary>
/// Rotary position tables (cos, sin) for positions [start, start+tokens), computed like transformers'
/// LlamaRotaryEmbedding in f32: inv_freq = 1 / base^(2i/d), angle = position · inv_freq, with rope_scaling applied.
/// Only the first d/2 columns are produced (HF duplicates them for the rotate_half layout).
/// </summary>
public sealed class RotaryEmbedding
{
    readonly LlamaConfig config;
    readonly float[] invFreq;   // (d/2)
    readonly int half;

    public RotaryEmbedding(LlamaConfig config)
    {
        this.config = config;
        half = config.HeadDim / 2;
        invFreq = InverseFrequencies(config.RopeTheta);
        if (config.RopeScaling is { Type: "llama3" } s) ApplyLlama3(invFreq, s);
    }

    float[] InverseFrequencies(double theta)
    {
        int d = config.HeadDim;
        var f = new float[half];
        // torch: base ** (arange(0, d, 2).float() / d) in f32, then 1.0 / that in f32.
        for (int i = 0; i < half; i++)
        {
            float exponent = (float)(2 * i) / d;
            f[i] = 1f / (float)Math.Pow((float)theta, exponent);
        }
        return f;
    }

    static void ApplyLlama3(float[] inv, RopeScaling s)
    {
        double lowWavelen = s.OriginalMaxPositions / s.LowFreqFactor;
        double highWavelen = s.OriginalMaxPositions / s.HighFreqFactor;
        for (int i = 0; i < inv.Length; i++)
        {
            double wavelen = 2 * Math.PI / inv[i];
            double f = inv[i];
            if (wavelen > lowWavelen) f = inv[i] / s.Factor;
            else if (wavelen >= highWavelen)
            {
                double smooth = (s.OriginalMaxPositions / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                f = (1 - smooth) * inv[i] / s.Factor + smooth * inv[i];
            }
            inv[i] = (float)f;
        }
    }

    /// <summary>Writes (tokens, d/2) tables. <paramref name="sequenceLength"/> matters only for dynamic NTK scaling.</summary>
    public void Compute(Span<float> cos, Span<float> sin, int start, int tokens, int sequenceLength)
    {
        ReadOnlySpan<float> freqs = invFreq;
        float positionScale = 1f;
        float[]? dynamic = null;
        if (config.RopeScaling is { } s)
        {
            if (s.Type == "linear") positionScale = (float)(1 / s.Factor);
            else if (s.Type == "dynamic" && sequenceLength > config.MaxPositionEmbeddings)
            {
                // NTK-aware: grow the base with the sequence length (transformers' _compute_dynamic_ntk_parameters).
                double d = config.HeadDim;
                double b = config.RopeTheta * Math.Pow(s.Factor * sequenceLength / config.MaxPositionEmbeddings - (s.Factor - 1), d / (d - 2));
                dynamic = InverseFrequencies(b);
                freqs = dynamic;
            }
        }
        for (int t = 0; t < tokens; t++)
        {
            float pos = (start + t) * positionScale;
            var c = cos.Slice(t * half, half);
            var sn = sin.Slice(t * half, half);
            for (int i = 0; i < half; i++)
            {
                float angle = pos * freqs[i];
                c[i] = (float)Math.Cos(angle);
                sn[i] = (float)Math.Sin(angle);
            }
        }
    }
}
