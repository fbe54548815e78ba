using Llava.Formats;
using System.Text.Json;

namespace Llava.Models.Llama;

/// <summary>The <c>rope_scaling</c> entry of a LLaMA config: linear, dynamic (NTK) or llama3.</summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalMaxPositions = 8192)
{
    public static RopeScaling? FromJson(JsonElement config)
    {
        var s = config.Obj("rope_scaling");
        if (s is null) return null;
        var e = s.Value;
        string type = e.Str("rope_type") ?? e.Str("type") ?? "default";
        if (type == "default") return null;
        if (type is not ("linear" or "dynamic" or "llama3"))
            throw new ModelFormatException($"rope_scaling type '{type}' is not supported (supported: linear, dynamic, llama3)");
        return new RopeScaling(type, e.Double("factor", 1), e.Double("low_freq_factor", 1), e.Double("high_freq_factor", 4),
            e.Int("original_max_position_embeddings", 8192));
    }
}
