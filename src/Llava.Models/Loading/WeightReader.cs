using Llava.Formats;
using Llava.Tensors;

namespace Llava.Models.Loading;

/// <summary>
/// Reads named weights with their expected shapes and collects every problem (missing, mis-shaped, wrong dtype)
/// so that one load reports them all at once instead of failing on the first.
/// </summary>
public sealed unsafe class WeightReader
{
    readonly ITensorFile file;
    readonly List<string> problems = new();
    readonly HashSet<string> used = new(StringComparer.Ordinal);

    public WeightReader(ITensorFile file) => this.file = file;

    public string Source => file.Source;
    /// <summary>The tensors this reader reads from.</summary>
    public ITensorFile File => file;
    public bool Has(string name) => file.Contains(name);
    public IReadOnlyCollection<string> Used => used;

    StoredTensor? Find(string name, long[] shape)
    {
        if (!file.TryGet(name, out var t))
        {
            problems.Add($"missing tensor '{name}' (expected shape [{string.Join(", ", shape)}])");
            return null;
        }
        used.Add(name);
        if (!t.Shape.SequenceEqual(shape))
        {
            problems.Add($"tensor '{name}' has shape {t.ShapeString}, expected [{string.Join(", ", shape)}]");
            return null;
        }
        if (t.Quant is null && t.DType is not (DType.F32 or DType.F16 or DType.BF16))
        {
            problems.Add($"tensor '{name}' has dtype {t.DType}; only F32, F16 and BF16 weights are supported");
            return null;
        }
        return t;
    }

    /// <summary>A (rows × cols) matrix, used in place (memory-mapped). A 4-D conv kernel may be read flattened.</summary>
    public WeightMatrix Matrix(string name, int rows, int cols, long[]? storedShape = null)
    {
        var t = Find(name, storedShape ?? [rows, cols]);
        if (t is null) return default;
        if (t.Quant is GgmlType q) return new WeightMatrix(q, rows, cols, t.Data);
        return Quantizer is { } qz ? qz.Quantize(name, t, rows, cols) : new WeightMatrix(t.DType, rows, cols, t.Data);
    }

    /// <summary>When set, f32/f16/bf16 matrices are quantized as they are read (--load-8bit / --load-4bit).</summary>
    public LoadTimeQuantizer? Quantizer { get; init; }

    /// <summary>A small vector (norm weights, biases, embeddings) converted to f32.</summary>
    public float[] Vector(string name, params long[] shape)
    {
        var t = Find(name, shape);
        return t is null ? [] : t.ToFloat32();
    }

    public float[]? OptionalVector(string name, params long[] shape) => Has(name) ? Vector(name, shape) : null;

    public void Problem(string message) => problems.Add(message);

    /// <summary>Throws one ModelFormatException listing every problem of several readers over the same checkpoint.</summary>
    public static void ThrowIfProblems(string what, params WeightReader[] readers)
    {
        var all = readers.SelectMany(r => r.problems).Distinct().ToList();
        if (all.Count == 0) return;
        var merged = new WeightReader(readers[0].file);
        merged.problems.AddRange(all);
        merged.ThrowIfProblems(what);
    }

    /// <summary>Throws one ModelFormatException listing every problem seen so far.</summary>
    public void ThrowIfProblems(string what)
    {
        if (problems.Count == 0) return;
        const int show = 20;
        var lines = problems.Take(show).Select(p => "  - " + p);
        string more = problems.Count > show ? $"\n  ... and {problems.Count - show} more" : "";
        throw new ModelFormatException($"{Source}: cannot load {what}: {problems.Count} problem(s):\n{string.Join("\n", lines)}{more}");
    }
}
