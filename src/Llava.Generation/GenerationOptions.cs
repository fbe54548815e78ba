namespace Llava.Generation;

/// <summary>How to pick tokens and when to stop. Temperature 0 means greedy decoding.</summary>
public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 512;
    /// <summary>0 = greedy (argmax); LLaVA's CLI default is 0.2.</summary>
    public float Temperature { get; init; } = 0.2f;
    /// <summary>Nucleus sampling mass; 1 (or null) disables it.</summary>
    public float? TopP { get; init; }
    /// <summary>Keep only the k most likely tokens; 0 disables it.</summary>
    public int TopK { get; init; }
    /// <summary>HF-style repetition penalty over the context's tokens; 1 disables it.</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    public int? Seed { get; init; }
    /// <summary>Text that ends the answer (the template's separator); not included in the output.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Stop at the tokenizer's EOS token (the fixtures' dumps do not).</summary>
    public bool StopAtEos { get; init; } = true;

    public bool IsGreedy => Temperature <= 0;
}
