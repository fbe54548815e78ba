using System.Text;
using System.Text.Json;
using Llava.Tensors;

namespace Llava.Formats.Safetensors;

/// <summary>
/// A memory-mapped <c>.safetensors</c> file: 8-byte little-endian header length, a JSON header
/// <c>{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}</c>, then the raw data.
/// Every offset is validated against the file size before any tensor is handed out.
/// </summary>
public sealed unsafe class SafetensorsFile : ITensorFile
{
    /// <summary>Headers larger than this are refused (the format's own reader caps at 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    readonly MappedFile file;
    readonly Dictionary<string, StoredTensor> tensors = new(StringComparer.Ordinal);

    public string Source => file.Path;
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public IReadOnlyCollection<string> Names => tensors.Keys;

    SafetensorsFile(MappedFile file, Dictionary<string, string> metadata)
    {
        this.file = file;
        Metadata = metadata;
    }

    public bool TryGet(string name, out StoredTensor tensor) => tensors.TryGetValue(name, out tensor!);

    public static SafetensorsFile Open(string path)
    {
        var file = new MappedFile(path);
        try
        {
            var result = new SafetensorsFile(file, new Dictionary<string, string>());
            result.ReadHeader();
            return result;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    void ReadHeader()
    {
        string path = file.Path;
        if (file.Length < 8) throw new ModelFormatException($"{path}: not a safetensors file (only {file.Length} bytes; the 8-byte header length is missing)");
        long headerLength = BitConverter.ToInt64(file.Span(0, 8));
        if (headerLength <= 0 || headerLength > MaxHeaderBytes)
            throw new ModelFormatException($"{path}: not a safetensors file or corrupt (header length {headerLength})");
        if (8 + headerLength > file.Length)
            throw new ModelFormatException($"{path}: truncated: the header needs {headerLength} bytes but the file has {file.Length - 8} after the length field");
        long dataStart = 8 + headerLength;
        long dataLength = file.Length - dataStart;

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(file.Span(8, (int)headerLength).ToArray());
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{path}: corrupt safetensors header (invalid JSON: {e.Message})", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ModelFormatException($"{path}: safetensors header is not a JSON object");
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind == JsonValueKind.Object)
                        foreach (var m in prop.Value.EnumerateObject())
                            ((Dictionary<string, string>)Metadata)[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    continue;
                }
                tensors[prop.Name] = ReadEntry(path, prop.Name, prop.Value, dataStart, dataLength);
            }
        }
    }

    StoredTensor ReadEntry(string path, string name, JsonElement e, long dataStart, long dataLength)
    {
        string where = $"{path}: tensor '{name}'";
        if (e.ValueKind != JsonValueKind.Object) throw new ModelFormatException($"{where}: header entry is not an object");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new ModelFormatException($"{where}: missing dtype");
        var dtype = DTypeInfo.FromSafetensors(dt.GetString()!) ?? throw new ModelFormatException($"{where}: unsupported dtype {dt.GetString()}");
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new ModelFormatException($"{where}: missing shape");
        var shape = new long[sh.GetArrayLength()];
        if (shape.Length > 8) throw new ModelFormatException($"{where}: {shape.Length} dimensions is absurd");
        int k = 0;
        long count = 1;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0)
                throw new ModelFormatException($"{where}: bad dimension {d.GetRawText()}");
            shape[k++] = v;
            try { count = checked(count * v); }
            catch (OverflowException) { throw new ModelFormatException($"{where}: shape overflows"); }
        }
        if (!e.TryGetProperty("data_offsets", out var offs) || offs.ValueKind != JsonValueKind.Array || offs.GetArrayLength() != 2)
            throw new ModelFormatException($"{where}: missing data_offsets");
        if (!offs[0].TryGetInt64(out long begin) || !offs[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw new ModelFormatException($"{where}: bad data_offsets {offs.GetRawText()}");
        if (end > dataLength)
            throw new ModelFormatException($"{where}: data_offsets [{begin}, {end}) point past the end of the file (data section is {dataLength} bytes; the file is truncated or corrupt)");
        long expected;
        try { expected = checked(count * dtype.Size()); }
        catch (OverflowException) { throw new ModelFormatException($"{where}: shape overflows"); }
        if (end - begin != expected)
            throw new ModelFormatException($"{where}: {end - begin} bytes stored but shape [{string.Join(", ", shape)}] of {dtype} needs {expected}");
        return new StoredTensor(name, dtype, shape, file.Pointer + dataStart + begin);
    }

    public void Dispose() => file.Dispose();
}
