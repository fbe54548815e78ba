using Llava.Formats;
using Llava.Formats.Safetensors;
using Llava.Formats.Torch;
using Formats = Llava.Formats;

namespace Llava.Models.Loading;

/// <summary>Finds and opens the weight files of a checkpoint directory, whatever their format.</summary>
public static class CheckpointFiles
{
    /// <summary>
    /// Opens <c>model.safetensors</c>, <c>model.safetensors.index.json</c> (shards), <c>pytorch_model.bin</c> or
    /// <c>pytorch_model.bin.index.json</c>, preferring safetensors as transformers does.
    /// </summary>
    public static ITensorFile OpenDirectory(string dir)
    {
        if (!Directory.Exists(dir)) throw new ModelFormatException($"{dir}: directory not found");
        string P(string f) => Path.Combine(dir, f);
        if (File.Exists(P("model.safetensors"))) return SafetensorsFile.Open(P("model.safetensors"));
        if (File.Exists(P("model.safetensors.index.json"))) return ShardedTensorFile.Open(P("model.safetensors.index.json"), OpenFile);
        if (File.Exists(P("pytorch_model.bin"))) return TorchCheckpoint.Open(P("pytorch_model.bin"));
        if (File.Exists(P("pytorch_model.bin.index.json"))) return ShardedTensorFile.Open(P("pytorch_model.bin.index.json"), OpenFile);
        var any = Directory.GetFiles(dir, "*.safetensors");
        if (any.Length == 1) return SafetensorsFile.Open(any[0]);
        throw new ModelFormatException($"{dir}: no weights found (expected model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json)");
    }

    /// <summary>Opens one weight file by its extension (.safetensors, .gguf, or a PyTorch .bin/.pt/.pth).</summary>
    public static ITensorFile OpenFile(string path)
    {
        if (!File.Exists(path)) throw new ModelFormatException($"{path}: file not found");
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) return SafetensorsFile.Open(path);
        if (path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) return Formats.Gguf.GgufFile.Open(path);
        return TorchCheckpoint.Open(path);
    }

    /// <summary>True when the directory holds weights of any supported format.</summary>
    public static bool HasWeights(string dir) =>
        new[] { "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json" }
            .Any(f => File.Exists(Path.Combine(dir, f)));
}
