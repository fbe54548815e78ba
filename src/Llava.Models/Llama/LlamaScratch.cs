namespace Llava.Models.Llama;

/// <summary>
/// Activation buffers of one LLaMA forward pass, sized for up to <see cref="Tokens"/> tokens. Decoding reuses
/// them step after step, so the token loop allocates nothing; a longer prompt re-plans them explicitly.
/// </summary>
public sealed class LlamaScratch
{
    public int Tokens { get; private set; }
    public float[] Norm = [], Q = [], Attn = [], Out = [], Gate = [], Up = [], Cos = [], Sin = [];
    /// <summary>New keys / values (T, kvHeads·headDim) before they are rounded into an f16 cache (unused with an f32 cache, which is written in place).</summary>
    public float[] K = [], V = [];
    readonly LlamaConfig config;

    public LlamaScratch(LlamaConfig config, int tokens)
    {
        this.config = config;
        Ensure(tokens);
    }

    public void Ensure(int tokens)
    {
        if (tokens <= Tokens) return;
        var c = config;
        Tokens = tokens;
        Norm = new float[tokens * c.HiddenSize];
        Q = new float[tokens * c.NumHeads * c.HeadDim];
        Attn = new float[tokens * c.NumHeads * c.HeadDim];
        Out = new float[tokens * c.HiddenSize];
        Gate = new float[tokens * c.IntermediateSize];
        Up = new float[tokens * c.IntermediateSize];
        Cos = new float[tokens * c.HeadDim / 2];
        Sin = new float[tokens * c.HeadDim / 2];
        K = new float[tokens * c.NumKvHeads * c.HeadDim];
        V = new float[tokens * c.NumKvHeads * c.HeadDim];
    }
}
