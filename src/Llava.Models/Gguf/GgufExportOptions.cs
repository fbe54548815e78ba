namespace Llava.Models.Gguf;

/// <summary>How <see cref="GgufExporter"/> writes a checkpoint.</summary>
public sealed record GgufExportOptions
{
    /// <summary>The text model's type (see <see cref="GgufOutputType"/> for the per-tensor rules of each).</summary>
    public GgufOutputType OutputType { get; init; } = GgufOutputType.F16;
    /// <summary>
    /// The mmproj's matrix type: F32, F16 or BF16 (llama.cpp's LLaVA mmproj files are F16). Default: <see cref="OutputType"/>
    /// when that is a float type, else F16.
    /// </summary>
    public GgufOutputType? MmprojType { get; init; }
    /// <summary>llama-quantize's --pure: every quantizable matrix (token_embd and output included) in the base type, no mix rules.</summary>
    public bool Pure { get; init; }
    /// <summary>The CLIP checkpoint directory of an original-layout model (else mm_vision_tower resolved as a local path).</summary>
    public string? VisionTower { get; init; }
    /// <summary>Called as each tensor streams out (at its start and after every chunk of at most 4 MiB of source floats).</summary>
    public Action<GgufExportProgress>? Progress { get; init; }

    internal GgufOutputType ResolvedMmprojType
    {
        get
        {
            var t = MmprojType ?? (OutputType.IsFloat() ? OutputType : GgufOutputType.F16);
            if (!t.IsFloat()) throw new ArgumentException($"the mmproj is written as f32, f16 or bf16 (llama.cpp's LLaVA projector files are not quantized), not {t.Name()}");
            return t;
        }
    }
}

/// <summary>What one exported file holds.</summary>
public sealed record GgufFileReport(string Path, GgufOutputType Type, long FileBytes, long SourceBytes, IReadOnlyList<GgufExportedTensor> Tensors, TimeSpan Elapsed)
{
    public long Parameters => Tensors.Sum(t => t.Elements);
    /// <summary>File bits per parameter (metadata included).</summary>
    public double BitsPerWeight => Parameters == 0 ? 0 : FileBytes * 8.0 / Parameters;
    /// <summary>Tensor count per ggml type, most frequent first.</summary>
    public IReadOnlyList<(global::Llava.Tensors.GgmlType Type, int Count)> TypeCounts =>
        Tensors.GroupBy(t => t.Type).Select(g => (g.Key, g.Count())).OrderByDescending(x => x.Item2).ToList();
    public IEnumerable<GgufExportedTensor> Fallbacks => Tensors.Where(t => t.Fallback is not null);
}

/// <summary>The text model and mmproj written by <see cref="GgufExporter.Export"/>; deconstructs to the two paths.</summary>
public sealed record GgufExportResult
{
    public GgufExportResult(GgufFileReport text, GgufFileReport mmproj) { Text = text; Mmproj = mmproj; }
    public GgufFileReport Text { get; }
    public GgufFileReport Mmproj { get; }
    public string TextModel => Text.Path;
    public string MmprojPath => Mmproj.Path;
    public void Deconstruct(out string textModel, out string mmproj) { textModel = Text.Path; mmproj = Mmproj.Path; }
}
