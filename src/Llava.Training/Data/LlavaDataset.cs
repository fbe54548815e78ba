using System.Collections.Concurrent;
using System.Text.Json;
using Llava.Text;
using Llava.Vision;

namespace Llava.Training.Data;

/// <summary>
/// LLaVA's <c>LazySupervisedDataset</c>: a LLaVA-format JSON list of
/// <c>{"id", "image"?, "conversations": [{"from": "human"|"gpt", "value"}]}</c> with images under
/// <see cref="LlavaDataOptions.ImageFolder"/>. Records are checked when the file is loaded; a malformed record
/// is skipped with a warning naming it and counted in <see cref="Report"/> instead of crashing the run. Text is
/// tokenized and images are decoded lazily, per sample; an image that turns out to be corrupt then is reported
/// once and its sample skipped by <see cref="TryGetSample"/> (and by <see cref="LlavaDataLoader"/>).
/// Thread-safe.
/// </summary>
public sealed class LlavaDataset
{
    readonly LlavaRecord[] records;
    readonly ConcurrentDictionary<int, string> failed = new();

    public string SourcePath { get; }
    public LlavaDataOptions Options { get; }
    public LlavaPreprocessor Preprocessor { get; }
    public ClipImageProcessor ImageProcessor { get; }
    public DataReport Report { get; }
    /// <summary>The accepted records, in file order.</summary>
    public IReadOnlyList<LlavaRecord> Records => records;
    public int Count => records.Length;

    /// <summary>LLaVA's <c>lengths</c>: words + 128 for image records.</summary>
    public int[] Lengths => records.Select(r => r.Length).ToArray();
    /// <summary>LLaVA's <c>modality_lengths</c>: words, negative for text-only records (for <c>group_by_modality_length</c>).</summary>
    public int[] ModalityLengths => records.Select(r => r.ModalityLength).ToArray();

    LlavaDataset(string source, LlavaRecord[] records, LlavaDataOptions options, LlavaPreprocessor preprocessor,
        ClipImageProcessor imageProcessor, DataReport report)
    {
        SourcePath = source;
        this.records = records;
        Options = options;
        Preprocessor = preprocessor;
        ImageProcessor = imageProcessor;
        Report = report;
    }

    /// <summary>
    /// Loads a data file. Throws <see cref="LlavaDataException"/> only when the file as a whole is unusable (missing,
    /// not JSON, not a list); bad records are skipped and reported (<paramref name="onWarning"/> is called for each).
    /// </summary>
    public static LlavaDataset Load(string jsonPath, LlamaTokenizer tokenizer, ClipImageProcessor imageProcessor,
        LlavaDataOptions options, Action<DataWarning>? onWarning = null)
    {
        ArgumentNullException.ThrowIfNull(jsonPath);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(jsonPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new LlavaDataException($"{jsonPath}: cannot read the data file: {e.Message}", e);
        }
        return Parse(bytes, jsonPath, tokenizer, imageProcessor, options, onWarning);
    }

    /// <summary><see cref="Load"/> from JSON bytes already in memory; <paramref name="sourceName"/> names it in messages.</summary>
    public static LlavaDataset Parse(ReadOnlyMemory<byte> json, string sourceName, LlamaTokenizer tokenizer, ClipImageProcessor imageProcessor,
        LlavaDataOptions options, Action<DataWarning>? onWarning = null)
    {
        ArgumentNullException.ThrowIfNull(imageProcessor);
        var preprocessor = new LlavaPreprocessor(tokenizer, options);
        var report = new DataReport(options.MaxStoredWarnings, onWarning);

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            string where = e.LineNumber is long line ? $" at line {line + 1}, byte {e.BytePositionInLine + 1}" : "";
            throw new LlavaDataException($"{sourceName}: not valid JSON{where}: {e.Message}", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Array)
                throw new LlavaDataException(
                    $"{sourceName}: expected a JSON list of records ([{{\"id\": ..., \"image\": ..., \"conversations\": [...]}}, ...]) at the top level, found {Describe(root.ValueKind)}.");

            var accepted = new List<LlavaRecord>();
            int index = 0;
            foreach (var element in root.EnumerateArray())
            {
                var record = Check(element, index, preprocessor, imageProcessor, options, report);
                if (record != null) accepted.Add(record);
                index++;
            }
            report.TotalRecords = index;
            report.AcceptedAtLoad = accepted.Count;
            return new LlavaDataset(sourceName, accepted.ToArray(), options, preprocessor, imageProcessor, report);
        }
    }

    /// <summary>Full path of a record's image.</summary>
    public string ImagePath(LlavaRecord record) =>
        Path.Combine(Options.ImageFolder, record.Image ?? throw new InvalidOperationException($"record \"{record.Id}\" has no image"));

    /// <summary>True once sample <paramref name="index"/> has failed (its image could not be decoded).</summary>
    public bool HasFailed(int index) => failed.ContainsKey(index);

    /// <summary>
    /// The sample at <paramref name="index"/>, or false when its image cannot be decoded (reported once in
    /// <see cref="Report"/> as <see cref="DataIssue.ImageCorrupt"/>; later calls return false at once).
    /// </summary>
    public bool TryGetSample(int index, out TrainingSample sample)
    {
        try
        {
            sample = GetSample(index);
            return true;
        }
        catch (SampleUnavailableException)
        {
            sample = null!;
            return false;
        }
    }

    /// <summary>The sample at <paramref name="index"/>; throws <see cref="SampleUnavailableException"/> when its image cannot be decoded.</summary>
    public TrainingSample GetSample(int index)
    {
        var record = records[index];
        if (failed.TryGetValue(index, out var why)) throw new SampleUnavailableException(record, why);

        var tokens = Preprocessor.Process(record);
        if (tokens.TokenizationMismatch)
            Report.Add(record.SourceIndex, record.Id, DataIssue.TokenizationMismatch,
                $"{tokens.MismatchMessage} (all labels ignored, as LLaVA does)");

        float[]? pixels = null;
        int h = 0, w = 0;
        if (record.HasImage)
        {
            string path = ImagePath(record);
            try
            {
                var image = ImageDecoder.Decode(path);
                pixels = ImageProcessor.Preprocess(image, Options.ImageAspectRatio == ImageAspectRatio.Pad ? PreprocessMode.Pad : PreprocessMode.Default, out h, out w);
            }
            catch (ImageDecodeException e)
            {
                string message = "image cannot be decoded: " + e.Message;
                failed.TryAdd(index, message);
                Report.Add(record.SourceIndex, record.Id, DataIssue.ImageCorrupt, message);
                throw new SampleUnavailableException(record, message);
            }
        }
        else if (Options.IsMultimodal)
        {
            // "image does not exist in the data, but the model is multimodal": zeros of crop size.
            h = ImageProcessor.Config.CropHeight;
            w = ImageProcessor.Config.CropWidth;
            pixels = new float[3 * h * w];
        }

        return new TrainingSample
        {
            Index = index,
            Record = record,
            InputIds = tokens.InputIds,
            Labels = tokens.Labels,
            TokenizationMismatch = tokens.TokenizationMismatch,
            HasImage = record.HasImage,
            PixelValues = pixels,
            ImageHeight = h,
            ImageWidth = w,
        };
    }

    /// <summary>
    /// Tokenizes every record now (text only, no images), so <see cref="Report"/> holds every tokenization mismatch
    /// before training starts. Returns the number of mismatched samples.
    /// </summary>
    public int ScanTokenization()
    {
        int n = 0;
        Parallel.For(0, records.Length, i =>
        {
            var t = Preprocessor.Process(records[i]);
            if (!t.TokenizationMismatch) return;
            Interlocked.Increment(ref n);
            Report.Add(records[i].SourceIndex, records[i].Id, DataIssue.TokenizationMismatch, $"{t.MismatchMessage} (all labels ignored, as LLaVA does)");
        });
        return n;
    }

    // ---- load-time checks ----

    static LlavaRecord? Check(JsonElement e, int index, LlavaPreprocessor pre, ClipImageProcessor imageProcessor,
        LlavaDataOptions options, DataReport report)
    {
        string id = "#" + index;
        LlavaRecord? Skip(DataIssue issue, string message)
        {
            report.Add(index, id, issue, message);
            return null;
        }

        if (e.ValueKind != JsonValueKind.Object) return Skip(DataIssue.InvalidRecord, $"a record must be a JSON object, found {Describe(e.ValueKind)}");
        if (e.TryGetProperty("id", out var idElement))
        {
            if (idElement.ValueKind == JsonValueKind.String) id = idElement.GetString()!;
            else if (idElement.ValueKind == JsonValueKind.Number) id = idElement.GetRawText();
            else return Skip(DataIssue.InvalidRecord, $"\"id\" must be a string or a number, found {Describe(idElement.ValueKind)}");
        }

        string? image = null;
        if (e.TryGetProperty("image", out var imageElement))
        {
            if (imageElement.ValueKind != JsonValueKind.String)
                return Skip(DataIssue.InvalidRecord, $"\"image\" must be a file name (string), found {Describe(imageElement.ValueKind)}");
            image = imageElement.GetString()!;
            if (image.Length == 0) return Skip(DataIssue.InvalidRecord, "\"image\" is an empty string");
        }

        if (!e.TryGetProperty("conversations", out var convElement) || convElement.ValueKind == JsonValueKind.Null)
            return Skip(DataIssue.MissingConversations, "no \"conversations\" list");
        if (convElement.ValueKind != JsonValueKind.Array)
            return Skip(DataIssue.InvalidRecord, $"\"conversations\" must be a list, found {Describe(convElement.ValueKind)}");
        var turns = new List<ConversationTurn>();
        foreach (var t in convElement.EnumerateArray())
        {
            int j = turns.Count;
            if (t.ValueKind != JsonValueKind.Object) return Skip(DataIssue.InvalidRecord, $"turn {j} must be an object, found {Describe(t.ValueKind)}");
            if (!t.TryGetProperty("from", out var from) || from.ValueKind != JsonValueKind.String)
                return Skip(DataIssue.InvalidRecord, $"turn {j} needs a string \"from\"");
            if (!t.TryGetProperty("value", out var value) || value.ValueKind != JsonValueKind.String)
                return Skip(DataIssue.InvalidRecord, $"turn {j} needs a string \"value\"");
            turns.Add(new ConversationTurn(from.GetString()!, value.GetString()!));
        }
        if (turns.Count == 0) return Skip(DataIssue.MissingConversations, "\"conversations\" is empty");
        if (turns.All(t => PyStr.WordCount(t.Value) == 0)) return Skip(DataIssue.MissingConversations, "every turn is empty");

        for (int j = 0; j < turns.Count; j++)
            if (turns[j].From is not (ConversationTurn.Human or ConversationTurn.Gpt))
                return Skip(DataIssue.UnknownRole, $"turn {j} has unknown role \"{turns[j].From}\" (expected \"human\" or \"gpt\")");
        int start = turns[0].From == ConversationTurn.Gpt ? 1 : 0; // LLaVA drops a leading gpt turn
        if (start == turns.Count) return Skip(DataIssue.RolesNotAlternating, "the only turn is from gpt");
        for (int j = start; j < turns.Count; j++)
        {
            string expected = (j - start) % 2 == 0 ? ConversationTurn.Human : ConversationTurn.Gpt;
            if (turns[j].From != expected)
                return Skip(DataIssue.RolesNotAlternating, $"turn {j} is from \"{turns[j].From}\" but \"{expected}\" was expected (turns must alternate human, gpt, ...)");
        }

        var record = new LlavaRecord(index, id, image, turns);
        var processed = record.HasImage ? pre.PreprocessMultimodal(turns) : turns;
        if (pre.Template.Style == SeparatorStyle.Plain)
        {
            if (!record.HasImage) return Skip(DataIssue.UnsupportedFormat, "the plain (pretraining) format needs an image; this record is text-only");
            if (processed.Count != 2) return Skip(DataIssue.UnsupportedFormat, $"the plain (pretraining) format needs exactly 2 turns, found {processed.Count}");
            if (!processed[0].Value.Contains(LlavaPreprocessor.DefaultImageToken, StringComparison.Ordinal))
                return Skip(DataIssue.UnsupportedFormat, "the plain (pretraining) format needs \"<image>\" in the first turn");
        }
        else if (record.HasImage)
        {
            int placeholders = processed.Sum(t => Occurrences(t.Value, LlavaPreprocessor.DefaultImageToken));
            if (placeholders > 1)
                return Skip(DataIssue.UnsupportedFormat, $"{placeholders} turns hold \"<image>\" but the record has one image (LLaVA would feed another sample's image features)");
        }

        if (image != null)
        {
            string path = Path.Combine(options.ImageFolder, image);
            FileInfo info;
            try
            {
                info = new FileInfo(path);
            }
            catch (Exception ex) when (ex is ArgumentException or NotSupportedException or PathTooLongException or UnauthorizedAccessException)
            {
                return Skip(DataIssue.ImageMissing, $"invalid image path {path}: {ex.Message}");
            }
            if (!info.Exists) return Skip(DataIssue.ImageMissing, $"image file not found: {path}");
            if (info.Length == 0) return Skip(DataIssue.ImageMissing, $"image file is empty: {path}");
            if (options.ImageCheck == ImageCheck.Decode)
            {
                try
                {
                    ImageDecoder.Decode(path);
                }
                catch (ImageDecodeException ex)
                {
                    return Skip(DataIssue.ImageCorrupt, "image cannot be decoded: " + ex.Message);
                }
            }
        }
        return record;
    }

    static int Occurrences(string s, string token)
    {
        int n = 0;
        for (int i = s.IndexOf(token, StringComparison.Ordinal); i >= 0; i = s.IndexOf(token, i + token.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "a list",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };
}

/// <summary>A sample that cannot be produced (its image failed to decode); already counted in the dataset's report.</summary>
public sealed class SampleUnavailableException(LlavaRecord record, string reason)
    : Exception($"record #{record.SourceIndex} (id \"{record.Id}\"): {reason}")
{
    public LlavaRecord Record { get; } = record;
}
