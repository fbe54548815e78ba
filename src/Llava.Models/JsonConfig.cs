using Llava.Formats;
using System.Text.Json;

namespace Llava.Models;

/// <summary>Small typed accessors over a Hugging Face config.json object, tolerant of nulls and missing keys.</summary>
internal static class JsonConfig
{
    public static int Int(this JsonElement e, string key, int fallback) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : fallback;

    public static int? IntOrNull(this JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;

    public static double Double(this JsonElement e, string key, double fallback) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : fallback;

    public static string? Str(this JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    public static bool Bool(this JsonElement e, string key, bool fallback) =>
        e.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;

    public static JsonElement? Obj(this JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Object ? v : null;

    /// <summary>An int, or the first element of an int array (eos_token_id may be either).</summary>
    public static int[] IntList(this JsonElement e, string key)
    {
        if (!e.TryGetProperty(key, out var v)) return [];
        if (v.ValueKind == JsonValueKind.Number) return [v.GetInt32()];
        if (v.ValueKind == JsonValueKind.Array) return v.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.Number).Select(x => x.GetInt32()).ToArray();
        return [];
    }

    public static JsonElement Load(string path)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{path}: invalid JSON: {e.Message}", e);
        }
    }
}
