using Llava.Formats;
using Llava.Formats.Gguf;
using Llava.Tensors;

namespace Llava.Models.Gguf;

/// <summary>One tensor of an exported file: its GGUF name, type, ggml dims, bytes, and the shape fallback it took (if any).</summary>
public sealed record GgufExportedTensor(string Name, GgmlType Type, long[] Dimensions, long Elements, long Bytes, long SourceBytes, string? Fallback);

/// <summary>Progress of one file being written: the tensor being streamed and the tensor-data bytes done so far.</summary>
public sealed record GgufExportProgress(string Path, string Tensor, GgmlType Type, int TensorIndex, int TensorCount, long BytesDone, long BytesTotal);

/// <summary>The tensors planned for one file, and progress reporting while they stream.</summary>
internal sealed class ExportTracker(Action<GgufExportProgress>? progress)
{
    public readonly List<GgufExportedTensor> Tensors = new();
    public string Path = "";
    long done, total = -1;
    int index;

    public Action<Stream> Wrap(GgufExportedTensor t, Action<Stream, Action<long>> write) => s =>
    {
        if (total < 0) total = Tensors.Sum(x => x.Bytes);
        int i = ++index;
        long before = done;
        progress?.Invoke(new GgufExportProgress(Path, t.Name, t.Type, i, Tensors.Count, before, total));
        write(s, bytes => { done = before + bytes; progress?.Invoke(new GgufExportProgress(Path, t.Name, t.Type, i, Tensors.Count, done, total)); });
        done = before + t.Bytes;
    };
}

/// <summary>
/// Adds checkpoint tensors to a <see cref="GgufWriter"/> under their GGUF names after checking their shapes;
/// every missing or mis-shaped tensor is collected so the exporter reports them all at once.
/// </summary>
internal sealed class TensorPlan(ITensorFile file, GgufWriter writer, List<string> problems, ExportTracker tracker)
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

    void Add(string name, StoredTensor t, GgmlType type, long[] ne, string? fallback, Func<long, long>? rowMap = null)
    {
        long row = ne[0];
        var info = new GgufExportedTensor(name, type, ne, t.ElementCount, GgufWriter.TensorBytes(type, ne), t.ByteLength, fallback);
        tracker.Tensors.Add(info);
        writer.AddTensor(name, type, ne, tracker.Wrap(info, (s, report) => GgufTensorEncoder.Write(s, t, type, row, rowMap, report)));
    }

    /// <summary>A PyTorch [rows, cols] weight: ggml ne = [cols, rows], rows optionally reordered.</summary>
    public void Matrix(string name, string source, long rows, long cols, GgmlType type, Func<long, long>? rowMap = null, string? fallback = null)
    {
        if (Find(source, [rows, cols]) is not { } t) return;
        Add(name, t, type, [cols, rows], fallback, rowMap);
    }

    /// <summary>A 1-D tensor (norm weight, bias, class embedding): always F32, as llama.cpp's converters keep them.</summary>
    public void Vector(string name, string source, long length)
    {
        if (Find(source, [length]) is not { } t) return;
        Add(name, t, GgmlType.F32, [length], null);
    }

    /// <summary>Any shape, stored as is (ggml dims are the PyTorch shape reversed).</summary>
    public void Tensor(string name, string source, long[] shape, GgmlType type)
    {
        if (Find(source, shape) is not { } t) return;
        Add(name, t, type, shape.Reverse().ToArray(), null);
    }
}
