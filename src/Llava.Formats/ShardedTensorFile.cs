using System.Text.Json;

namespace Llava.Formats;

/// <summary>
/// Several shard files behind one name table, as described by a Hugging Face <c>*.index.json</c>
/// (<c>{"weight_map": {tensor: shard file}}</c>). Works for safetensors and PyTorch .bin shards alike.
/// </summary>
public sealed class ShardedTensorFile : ITensorFile
{
    readonly List<ITensorFile> shards = new();
    readonly Dictionary<string, ITensorFile> owner = new(StringComparer.Ordinal);

    public string Source { get; }
    public IReadOnlyCollection<string> Names => owner.Keys;

    ShardedTensorFile(string source) => Source = source;

    public static ShardedTensorFile Open(string indexPath, Func<string, ITensorFile> openShard)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        Dictionary<string, string> map;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (!doc.RootElement.TryGetProperty("weight_map", out var wm) || wm.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException($"{indexPath}: no \"weight_map\" object");
            map = wm.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "", StringComparer.Ordinal);
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{indexPath}: invalid JSON: {e.Message}", e);
        }

        var result = new ShardedTensorFile(indexPath);
        try
        {
            var opened = new Dictionary<string, ITensorFile>(StringComparer.Ordinal);
            foreach (var (tensor, shardName) in map)
            {
                if (shardName.Length == 0 || shardName.Contains("..") || Path.IsPathRooted(shardName))
                    throw new ModelFormatException($"{indexPath}: bad shard name '{shardName}' for tensor '{tensor}'");
                if (!opened.TryGetValue(shardName, out var shard))
                {
                    var shardPath = Path.Combine(dir, shardName);
                    if (!File.Exists(shardPath)) throw new ModelFormatException($"{indexPath}: shard '{shardName}' is missing (expected at {shardPath})");
                    shard = openShard(shardPath);
                    opened[shardName] = shard;
                    result.shards.Add(shard);
                }
                if (!shard.Contains(tensor))
                    throw new ModelFormatException($"{indexPath}: tensor '{tensor}' is listed in shard '{shardName}' but that file does not contain it");
                result.owner[tensor] = shard;
            }
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    public bool TryGet(string name, out StoredTensor tensor)
    {
        if (owner.TryGetValue(name, out var f)) return f.TryGet(name, out tensor);
        tensor = null!;
        return false;
    }

    public void Dispose()
    {
        foreach (var s in shards) s.Dispose();
        shards.Clear();
    }
}
