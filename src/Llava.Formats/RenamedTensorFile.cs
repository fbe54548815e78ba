namespace Llava.Formats;

/// <summary>
/// Another file's tensors under other names: model code asks for its canonical (Hugging Face) names and this view
/// answers from, e.g., a GGUF file's <c>blk.N.attn_q.weight</c>. Disposing it disposes the inner file.
/// </summary>
public sealed class RenamedTensorFile : ITensorFile
{
    readonly ITensorFile inner;
    readonly Func<string, string?> map;
    readonly Dictionary<string, string> reverse;

    /// <param name="map">Canonical name → stored name, or null when the canonical name has no counterpart.</param>
    /// <param name="canonicalNames">Every canonical name this view offers (for listing).</param>
    public RenamedTensorFile(ITensorFile inner, Func<string, string?> map, IEnumerable<string> canonicalNames)
    {
        this.inner = inner;
        this.map = map;
        reverse = canonicalNames.Where(n => map(n) is { } s && inner.Contains(s)).ToDictionary(n => n, n => map(n)!, StringComparer.Ordinal);
    }

    public string Source => inner.Source;
    public IReadOnlyCollection<string> Names => reverse.Keys;

    public bool TryGet(string name, out StoredTensor tensor)
    {
        if (map(name) is { } stored && inner.TryGet(stored, out tensor)) return true;
        tensor = null!;
        return false;
    }

    public void Dispose() => inner.Dispose();
}
