namespace Llava.Generation;

/// <summary>
/// Picks the next token from logits as Hugging Face's generate does: repetition penalty, then temperature,
/// top-k and top-p, then a seeded draw; argmax when greedy. Buffers are allocated once per vocabulary size.
/// </summary>
public sealed class Sampler
{
    readonly GenerationOptions options;
    readonly Random random;
    readonly int[] order;
    readonly float[] probs;
    readonly int[] seen;   // stamp per token id: penalize each distinct id once, as HF's gather/scatter does
    int stamp;

    public Sampler(GenerationOptions options, int vocabSize)
    {
        this.options = options;
        random = options.Seed is int s ? new Random(s) : new Random();
        order = new int[vocabSize];
        probs = new float[vocabSize];
        seen = new int[vocabSize];
    }

    /// <summary>Index of the largest value (first one on ties, as torch.argmax). NaNs are ignored.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        float bestValue = float.NegativeInfinity;
        for (int i = 0; i < logits.Length; i++)
            if (logits[i] > bestValue) { bestValue = logits[i]; best = i; }
        return best;
    }

    /// <summary>Chooses a token. <paramref name="logits"/> may be modified. <paramref name="context"/> feeds the repetition penalty.</summary>
    public int Sample(Span<float> logits, ReadOnlySpan<int> context)
    {
        if (options.RepetitionPenalty != 1f)
        {
            float p = options.RepetitionPenalty;
            stamp++;
            foreach (int id in context)
            {
                if ((uint)id >= (uint)logits.Length || (uint)id >= (uint)seen.Length || seen[id] == stamp) continue;
                seen[id] = stamp;
                float l = logits[id];
                logits[id] = l < 0 ? l * p : l / p;
            }
        }
        if (options.IsGreedy) return ArgMax(logits);

        int n = logits.Length;
        float inv = 1f / options.Temperature;
        for (int i = 0; i < n; i++) { order[i] = i; probs[i] = logits[i] * inv; }
        var idx = order.AsSpan(0, n);
        var val = probs.AsSpan(0, n);
        // Sort descending by logit (ties keep a stable-enough order for sampling).
        val.Sort(idx, static (a, b) => b.CompareTo(a));

        int keep = n;
        if (options.TopK > 0) keep = Math.Min(keep, options.TopK);
        float max = val[0];
        double sum = 0;
        for (int i = 0; i < keep; i++) { float e = MathF.Exp(val[i] - max); val[i] = e; sum += e; }
        if (options.TopP is float topP && topP < 1f)
        {
            // Smallest prefix whose mass reaches top_p; always at least one token.
            double cum = 0;
            int cut = keep;
            for (int i = 0; i < keep; i++)
            {
                cum += val[i] / sum;
                if (cum >= topP) { cut = i + 1; break; }
            }
            keep = Math.Max(1, cut);
            sum = 0;
            for (int i = 0; i < keep; i++) sum += val[i];
        }
        double r = random.NextDouble() * sum;
        for (int i = 0; i < keep; i++)
        {
            r -= val[i];
            if (r <= 0) return idx[i];
        }
        return idx[keep - 1];
    }
}
