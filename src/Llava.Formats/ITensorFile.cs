namespace Llava.Formats;

/// <summary>A set of named tensors read from one or more files (safetensors, PyTorch .bin, shards of either).</summary>
public interface ITensorFile : IDisposable
{
    /// <summary>The file or directory this came from, for messages.</summary>
    string Source { get; }
    IReadOnlyCollection<string> Names { get; }
    bool TryGet(string name, out StoredTensor tensor);
}

public static class TensorFileExtensions
{
    public static StoredTensor Get(this ITensorFile f, string name) =>
        f.TryGet(name, out var t) ? t : throw new ModelFormatException($"{f.Source}: tensor '{name}' is missing");

    public static bool Contains(this ITensorFile f, string name) => f.TryGet(name, out _);
}
