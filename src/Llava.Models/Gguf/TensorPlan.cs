using Llava.Formats;
using Llava.Formats.Gguf;
using Llava.Tensors;

namespace Llava.Models.Gguf;

/// <summary>
/// Adds checkpoint tensors to a <see cref="GgufWriter"/> under their GGUF names after checking their shapes;
/// every missing or mis-shaped tensor is collected so the exporter reports them all at once.
/// </summary>
internal sealed class TensorPlan(ITensorFile file, GgufWriter writer, List<string> problems)
{
    StoredTensor? Find(string source, long[] shape)
    {
        if (!file.TryGet(source, out var t)) { problems.Add($"missing tensor '{source}'"); return null; }
        if (!t.Shape.SequenceEqual(shape))
        {
            problems.Add($"'{source}' has shape {t.ShapeString}, expected [{string.Join(", ", shape)}]");
            return null;
        }
        return t;
    }

    /// <summary>A PyTorch [rows, cols] weight: ggml ne = [cols, rows], rows optionally reordered.</summary>
    public void Matrix(string name, string source, long rows, long cols, GgmlType type, Func<long, long>? rowMap = null)
    {
        if (Find(source, [rows, cols]) is not { } t) return;
        writer.AddTensor(name, type, [cols, rows], s => GgufTensorEncoder.Write(s, t, type, cols, rowMap));
    }

    /// <summary>A 1-D tensor (norm weight, bias, class embedding): always F32, as llama.cpp's converters keep them.</summary>
    public void Vector(string name, string source, long length)
    {
        if (Find(source, [length]) is not { } t) return;
        writer.AddTensor(name, GgmlType.F32, [length], s => GgufTensorEncoder.Write(s, t, GgmlType.F32, length));
    }

    /// <summary>Any shape, stored as is (ggml dims are the PyTorch shape reversed).</summary>
    public void Tensor(string name, string source, long[] shape, GgmlType type)
    {
        if (Find(source, shape) is not { } t) return;
        long row = shape[^1];
        writer.AddTensor(name, type, shape.Reverse().ToArray(), s => GgufTensorEncoder.Write(s, t, type, row));
    }
}
