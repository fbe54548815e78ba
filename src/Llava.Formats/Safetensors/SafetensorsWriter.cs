using System.Text;
using System.Text.Json;
using Llava.Tensors;

namespace Llava.Formats.Safetensors;

/// <summary>Writes a <c>.safetensors</c> file that Hugging Face's reader (and ours) loads.</summary>
public static class SafetensorsWriter
{
    public readonly record struct Entry(string Name, DType DType, long[] Shape, byte[] Data);

    public static Entry F32(string name, long[] shape, ReadOnlySpan<float> values) =>
        new(name, DType.F32, shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values).ToArray());

    public static Entry I64(string name, long[] shape, ReadOnlySpan<long> values) =>
        new(name, DType.I64, shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values).ToArray());

    public static void Write(string path, IEnumerable<Entry> entries, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = entries.OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
        using var header = new MemoryStream();
        using (var w = new Utf8JsonWriter(header))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var e in list)
            {
                long n = 1;
                foreach (var d in e.Shape) n *= d;
                if (n * e.DType.Size() != e.Data.Length)
                    throw new ArgumentException($"{e.Name}: {e.Data.Length} bytes do not match shape [{string.Join(",", e.Shape)}] of {e.DType}");
                w.WriteStartObject(e.Name);
                w.WriteString("dtype", e.DType.ToSafetensors());
                w.WriteStartArray("shape");
                foreach (var d in e.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + e.Data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += e.Data.Length;
            }
            w.WriteEndObject();
        }
        // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
        while (header.Length % 8 != 0) header.WriteByte((byte)' ');
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write);
        fs.Write(BitConverter.GetBytes(header.Length));
        header.Position = 0;
        header.CopyTo(fs);
        foreach (var e in list) fs.Write(e.Data);
    }
}
