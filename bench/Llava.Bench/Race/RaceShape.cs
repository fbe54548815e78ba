namespace Llava.Bench.Race;

/// <summary>
/// The language-model shapes the race runs. The vision side is always CLIP ViT-L/14-336 as in LLaVA-1.5
/// (24 layers in the config, 23 used and written, hidden 1024, ffn 4096, 16 heads) with a 2-layer GELU MLP
/// projector to the text hidden size.
/// </summary>
sealed record RaceShape(string Name, int Vocab, int Hidden, int Layers, int Heads, int KvHeads, int Ffn, int Context)
{
    public const int VisionHidden = 1024, VisionFfn = 4096, VisionHeads = 16, VisionLayers = 24, VisionUsedLayers = 23;
    public const int ImageSize = 336, Patch = 14;
    public const int Patches = ImageSize / Patch * (ImageSize / Patch);   // 576 image tokens

    public int HeadDim => Hidden / Heads;

    public static readonly RaceShape Tiny = new("tiny", 32000, 256, 4, 4, 4, 768, 2048);
    /// <summary>TinyLlama-1.1B.</summary>
    public static readonly RaceShape OneB = new("1b", 32000, 2048, 22, 32, 4, 5632, 2048);
    /// <summary>LLaMA-7B / Vicuna-7B (LLaVA-1.5-7B's language model).</summary>
    public static readonly RaceShape SevenB = new("7b", 32000, 4096, 32, 32, 32, 11008, 4096);

    public static RaceShape Parse(string s) => s.ToLowerInvariant() switch
    {
        "tiny" => Tiny,
        "1b" => OneB,
        "7b" => SevenB,
        _ => throw new ArgumentException($"--shape {s}: expected tiny, 1b or 7b"),
    };

    /// <summary>Parameters of one decoder layer's matrices.</summary>
    public long LayerMatrixParams => (long)Hidden * Heads * HeadDim * 2 + (long)Hidden * KvHeads * HeadDim * 2 + 3L * Hidden * Ffn;

    /// <summary>
    /// FLOPs of a prefill of <paramref name="tokens"/> positions from an empty cache with logits for the last position
    /// only (what both engines compute): 2·T·(layer matrices) + causal attention 2·T²·(heads·head_dim)·layers + the
    /// output row.
    /// </summary>
    public double PrefillFlops(int tokens) =>
        2.0 * tokens * LayerMatrixParams * Layers + 2.0 * tokens * tokens * Heads * HeadDim * Layers + 2.0 * Vocab * Hidden;

    /// <summary>FLOPs of one image through the 23 used CLIP blocks and the projector (577 positions, full attention).</summary>
    public double ImageFlops()
    {
        double n = Patches + 1, c = VisionHidden, f = VisionFfn;
        double patchEmbed = 2.0 * Patches * 3 * Patch * Patch * c;
        double blocks = VisionUsedLayers * (2.0 * n * (4 * c * c + 2 * c * f) + 4.0 * n * n * c);
        double projector = 2.0 * Patches * (c * Hidden + (double)Hidden * Hidden);
        return patchEmbed + blocks + projector;
    }
}
