using System.Text.Json;

namespace Llava.Vision;

/// <summary>
/// The CLIPImageProcessor settings from a Hugging Face <c>preprocessor_config.json</c>. Defaults are those of
/// transformers' <c>CLIPImageProcessor.__init__</c> (shortest edge 224, bicubic, center crop 224x224,
/// rescale 1/255, OpenAI CLIP mean/std).
/// </summary>
public sealed class ClipImageProcessorConfig
{
    public static readonly double[] OpenAiClipMean = [0.48145466, 0.4578275, 0.40821073];
    public static readonly double[] OpenAiClipStd = [0.26862954, 0.26130258, 0.27577711];

    public bool DoResize { get; init; } = true;
    /// <summary><c>size: {"shortest_edge": N}</c>; null when an exact <see cref="SizeHeight"/> x <see cref="SizeWidth"/> is given.</summary>
    public int? SizeShortestEdge { get; init; } = 224;
    /// <summary><c>size: {"height", "width"}</c>: resize to exactly this size (no aspect preservation).</summary>
    public int? SizeHeight { get; init; }
    public int? SizeWidth { get; init; }
    public ResampleFilter Resample { get; init; } = ResampleFilter.Bicubic;
    public bool DoCenterCrop { get; init; } = true;
    public int CropHeight { get; init; } = 224;
    public int CropWidth { get; init; } = 224;
    public bool DoRescale { get; init; } = true;
    public double RescaleFactor { get; init; } = 1.0 / 255;
    public bool DoNormalize { get; init; } = true;
    public double[] ImageMean { get; init; } = OpenAiClipMean;
    public double[] ImageStd { get; init; } = OpenAiClipStd;
    /// <summary>Always effectively true here: <see cref="RgbImage"/> is RGB already.</summary>
    public bool DoConvertRgb { get; init; } = true;

    public static ClipImageProcessorConfig Load(string path)
    {
        string json;
        try
        {
            json = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{path}: cannot read preprocessor config: {e.Message}", e);
        }
        return Parse(json, path);
    }

    public static ClipImageProcessorConfig Parse(string json, string? nameForErrors = null)
    {
        string name = nameForErrors ?? "preprocessor_config.json";
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{name}: invalid JSON: {e.Message}", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{name}: expected a JSON object");
            try
            {
                return FromJson(root, name);
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"{name}: {e.Message}", e);
            }
        }
    }

    static ClipImageProcessorConfig FromJson(JsonElement root, string name)
    {
        var d = new ClipImageProcessorConfig();
        int? shortest = d.SizeShortestEdge, height = null, width = null;
        if (TryGet(root, "size", out var size))
        {
            // transformers get_size_dict(size, default_to_square=False): an int means shortest edge.
            (shortest, height, width) = ParseSize(size, defaultToSquare: false, name, "size");
            if (shortest is null && (height is null || width is null))
                throw new InvalidDataException($"{name}: size must contain 'shortest_edge' or 'height' and 'width'");
        }
        // Backward compatibility flag handled by CLIPImageProcessor.__init__.
        if (Bool(root, "use_square_size", false) && shortest is int s)
            (shortest, height, width) = (null, s, s);

        int cropH = d.CropHeight, cropW = d.CropWidth;
        if (TryGet(root, "crop_size", out var crop))
        {
            var (cs, ch, cw) = ParseSize(crop, defaultToSquare: true, name, "crop_size");
            if (cs is not null || ch is null || cw is null)
                throw new InvalidDataException($"{name}: crop_size must be an int or contain 'height' and 'width'");
            (cropH, cropW) = (ch.Value, cw.Value);
        }

        var resample = d.Resample;
        if (TryGet(root, "resample", out var rs))
        {
            int r = rs.GetInt32();
            if (r < 0 || r > 5) throw new InvalidDataException($"{name}: unknown resample value {r}");
            resample = (ResampleFilter)r;
        }

        var mean = TryGet(root, "image_mean", out var m) ? Triple(m, name, "image_mean") : d.ImageMean;
        var std = TryGet(root, "image_std", out var sd) ? Triple(sd, name, "image_std") : d.ImageStd;

        return new ClipImageProcessorConfig
        {
            DoResize = Bool(root, "do_resize", d.DoResize),
            SizeShortestEdge = shortest,
            SizeHeight = height,
            SizeWidth = width,
            Resample = resample,
            DoCenterCrop = Bool(root, "do_center_crop", d.DoCenterCrop),
            CropHeight = cropH,
            CropWidth = cropW,
            DoRescale = Bool(root, "do_rescale", d.DoRescale),
            RescaleFactor = TryGet(root, "rescale_factor", out var rf) ? rf.GetDouble() : d.RescaleFactor,
            DoNormalize = Bool(root, "do_normalize", d.DoNormalize),
            ImageMean = mean,
            ImageStd = std,
            DoConvertRgb = Bool(root, "do_convert_rgb", d.DoConvertRgb),
        };
    }

    static (int? Shortest, int? Height, int? Width) ParseSize(JsonElement e, bool defaultToSquare, string name, string key)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Number:
                int n = e.GetInt32();
                return defaultToSquare ? (null, n, n) : (n, null, null);
            case JsonValueKind.Array when e.GetArrayLength() == 2:
                return (null, e[0].GetInt32(), e[1].GetInt32());
            case JsonValueKind.Object:
                int? sh = TryGet(e, "shortest_edge", out var se) ? se.GetInt32() : null;
                int? h = TryGet(e, "height", out var he) ? he.GetInt32() : null;
                int? w = TryGet(e, "width", out var we) ? we.GetInt32() : null;
                if (h is not null && w is not null) return (null, h, w);
                if (sh is not null) return (sh, null, null);
                throw new InvalidDataException($"{name}: unsupported {key} {e.GetRawText()} (need shortest_edge or height+width)");
            default:
                throw new InvalidDataException($"{name}: unsupported {key} {e.GetRawText()}");
        }
    }

    static double[] Triple(JsonElement e, string name, string key)
    {
        if (e.ValueKind == JsonValueKind.Number) return [e.GetDouble(), e.GetDouble(), e.GetDouble()];
        if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() == 3) return [e[0].GetDouble(), e[1].GetDouble(), e[2].GetDouble()];
        throw new InvalidDataException($"{name}: {key} must be a number or a list of 3 numbers, got {e.GetRawText()}");
    }

    static bool TryGet(JsonElement obj, string key, out JsonElement value) =>
        obj.TryGetProperty(key, out value) && value.ValueKind != JsonValueKind.Null;

    static bool Bool(JsonElement obj, string key, bool fallback) =>
        TryGet(obj, key, out var v) ? v.GetBoolean() : fallback;
}
