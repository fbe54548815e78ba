using System.Diagnostics;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Llava.Training.Synthetic;

/// <summary>How many images to make. All training images get one caption (pretrain.json) and one conversation
/// (finetune.json); held-out images get the same plus <see cref="EvalQuestionsPerImage"/> eval questions.
/// <see cref="MinRounds"/>..<see cref="MaxRounds"/> is the number of question/answer rounds (of distinct types) per conversation;
/// <see cref="ExtraRounds"/> more rounds follow, of the types answered by finding a shape by its kind or noticing it is absent.</summary>
public sealed record ShapesDatasetCounts(int Train = 20000, int HeldOut = 1000, int EvalQuestionsPerImage = 7, int MinRounds = 2, int MaxRounds = 4, int ExtraRounds = 0, bool IndependentRounds = false)
{
    public void Validate()
    {
        if (MinRounds < 1 || MaxRounds > 7 || MinRounds > MaxRounds) throw new ArgumentOutOfRangeException(nameof(MinRounds), "rounds per conversation: 1 <= min <= max <= 7 (one per question type)");
        if (Train < 0 || HeldOut < 0) throw new ArgumentOutOfRangeException(nameof(Train), "image counts must be >= 0");
        if (ExtraRounds is < 0 or > 16) throw new ArgumentOutOfRangeException(nameof(ExtraRounds), "extra rounds: 0..16");
        if (EvalQuestionsPerImage is < 0 or > 7) throw new ArgumentOutOfRangeException(nameof(EvalQuestionsPerImage), "0..7 (one per question type)");
    }
}

public readonly record struct ShapesDatasetProgress(int ImagesDone, int ImagesTotal);

public sealed record ShapesDatasetResult(
    string OutputDir, int TrainImages, int HeldOutImages, int PretrainRecords, int FinetuneRecords, int EvalRecords,
    int Words, TimeSpan Elapsed);

/// <summary>
/// Writes a shapes-world dataset in LLaVA's data format:
/// <code>
/// outputDir/
///   images/train/000000.png ...      training images
///   images/heldout/000000.png ...    held-out images (scene seeds disjoint from training)
///   pretrain.json                    stage 1: [{id, image, conversations: [human "&lt;image&gt;\n..." , gpt caption]}]
///   finetune.json                    stage 2: 2-4 question/answer rounds per image
///   heldout_pretrain.json, heldout_finetune.json   the same for held-out images (validation loss)
///   eval.json                        [{id, image, type, question, answer}] on held-out images, one question each
///   scenes.json                      [{image, split, seed, canvas, background, shapes: [{kind, color, size, position, x, y, radius, fill}]}]
///   words.txt                        every word the text uses, one per line
///   dataset.json                     manifest: seed, counts, options, files
/// </code>
/// "image" paths are relative to <c>outputDir/images</c>. Output depends only on (counts, seed, options):
/// images are made in parallel but every random choice is derived from the seed and the image index.
/// </summary>
public static class ShapesDataset
{
    public const int FormatVersion = 1;
    const ulong TrainSplit = 1, HeldOutSplit = 2;

    public static ShapesDatasetResult Write(string outputDir, ShapesDatasetCounts counts, int seed,
        ShapesWorldOptions? options = null, IProgress<ShapesDatasetProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(outputDir);
        ArgumentNullException.ThrowIfNull(counts);
        counts.Validate();
        options ??= ShapesWorldOptions.Default;
        options.Validate();
        var clock = Stopwatch.StartNew();

        var (trainSeeds, heldOutSeeds) = SceneSeeds(seed, counts.Train, counts.HeldOut);
        string imageDir = Path.Combine(outputDir, "images");
        Directory.CreateDirectory(Path.Combine(imageDir, "train"));
        Directory.CreateDirectory(Path.Combine(imageDir, "heldout"));

        int total = counts.Train + counts.HeldOut;
        var items = new Item[total];
        int done = 0;
        Parallel.For(0, total, new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            bool train = i < counts.Train;
            int index = train ? i : i - counts.Train;
            int sceneSeed = train ? trainSeeds[index] : heldOutSeeds[index];
            string split = train ? "train" : "heldout";
            string image = $"{split}/{index:D6}.png";
            var scene = ShapesWorld.Layout(sceneSeed, options);
            File.WriteAllBytes(Path.Combine(imageDir, image), ShapesWorld.RenderPng(scene, options.PngCompressionLevel));
            items[i] = MakeText(scene, split, index, image, train ? 0 : counts.EvalQuestionsPerImage, counts);
            int d = Interlocked.Increment(ref done);
            if (progress != null && (d % 256 == 0 || d == total)) progress.Report(new ShapesDatasetProgress(d, total));
        });

        var train = items.AsSpan(0, counts.Train).ToArray();
        var heldOut = items.AsSpan(counts.Train).ToArray();
        WriteJson(Path.Combine(outputDir, "pretrain.json"), w => WriteConversations(w, train, pretrain: true));
        WriteJson(Path.Combine(outputDir, "finetune.json"), w => WriteConversations(w, train, pretrain: false));
        WriteJson(Path.Combine(outputDir, "heldout_pretrain.json"), w => WriteConversations(w, heldOut, pretrain: true));
        WriteJson(Path.Combine(outputDir, "heldout_finetune.json"), w => WriteConversations(w, heldOut, pretrain: false));
        int evalRecords = heldOut.Sum(h => h.Eval.Count);
        WriteJson(Path.Combine(outputDir, "eval.json"), w =>
        {
            w.WriteStartArray();
            foreach (var h in heldOut)
                for (int q = 0; q < h.Eval.Count; q++)
                {
                    w.WriteStartObject();
                    w.WriteString("id", $"{h.Id}-q{q}");
                    w.WriteString("image", h.Image);
                    w.WriteString("type", ShapeWords.Name(h.Eval[q].Type));
                    w.WriteString("question", h.Eval[q].Question);
                    w.WriteString("answer", h.Eval[q].Answer);
                    w.WriteEndObject();
                }
            w.WriteEndArray();
        });
        WriteJson(Path.Combine(outputDir, "scenes.json"), w =>
        {
            w.WriteStartArray();
            foreach (var it in items) WriteScene(w, it);
            w.WriteEndArray();
        });
        File.WriteAllLines(Path.Combine(outputDir, "words.txt"), ShapesVocabulary.Words);
        WriteJson(Path.Combine(outputDir, "dataset.json"), w =>
        {
            w.WriteStartObject();
            w.WriteString("generator", "Llava.Training.Synthetic.ShapesWorld");
            w.WriteNumber("format_version", FormatVersion);
            w.WriteNumber("seed", seed);
            w.WriteNumber("train_images", counts.Train);
            w.WriteNumber("heldout_images", counts.HeldOut);
            w.WriteNumber("eval_questions_per_image", counts.EvalQuestionsPerImage);
            w.WriteNumber("canvas_size", options.CanvasSize);
            w.WriteNumber("min_shapes", options.MinShapes);
            w.WriteNumber("max_shapes", options.MaxShapes);
            w.WriteNumber("color_jitter", options.ColorJitter);
            w.WriteString("image_folder", "images");
            w.WriteStartArray("files");
            foreach (var f in new[] { "pretrain.json", "finetune.json", "heldout_pretrain.json", "heldout_finetune.json", "eval.json", "scenes.json", "words.txt" })
                w.WriteStringValue(f);
            w.WriteEndArray();
            w.WriteEndObject();
        });

        return new ShapesDatasetResult(outputDir, counts.Train, counts.HeldOut, total, total, evalRecords, ShapesVocabulary.Words.Count, clock.Elapsed);
    }

    /// <summary>
    /// Scene seeds of the training and held-out images: hashes of (dataset seed, split, index), non-negative, all
    /// distinct, held-out ones never equal to a training one.
    /// </summary>
    public static (int[] Train, int[] HeldOut) SceneSeeds(int datasetSeed, int train, int heldOut)
    {
        var seen = new HashSet<int>();
        int[] Make(ulong split, int n)
        {
            var seeds = new int[n];
            for (int i = 0, attempt = 0; i < n; attempt++)
            {
                int s = (int)(ShapesRng.Mix((ulong)(uint)datasetSeed, split, (ulong)attempt) & 0x7FFFFFFF);
                if (seen.Add(s)) seeds[i++] = s;
            }
            return seeds;
        }
        var t = Make(TrainSplit, train);
        return (t, Make(HeldOutSplit, heldOut));
    }

    sealed record Item(string Id, string Image, string Split, ShapesScene Scene, string PretrainPrompt, string Caption,
        IReadOnlyList<QaPair> Conversation, IReadOnlyList<QaPair> Eval);

    static Item MakeText(ShapesScene scene, string split, int index, string image, int evalQuestions, ShapesDatasetCounts counts)
    {
        ulong s = (ulong)(uint)scene.Seed;
        var pretrainRng = new ShapesRng(ShapesRng.Mix(s, 0x9E7));
        var convRng = new ShapesRng(ShapesRng.Mix(s, 0xC0F));
        var evalRng = new ShapesRng(ShapesRng.Mix(s, 0xE7A1));
        var eval = new List<QaPair>();
        if (evalQuestions > 0)
        {
            var types = ShapeWords.QuestionTypes.ToList();
            evalRng.Shuffle(types);
            // Existence answers alternate with the image index: exactly balanced yes/no in the eval file.
            foreach (var t in types.Take(evalQuestions))
                eval.Add(ShapesLanguage.Ask(scene, t, evalRng, existenceAnswer: index % 2 == 0));
        }
        return new Item($"shapes-{split}-{index:D6}", image, split, scene,
            ShapesLanguage.PretrainPrompt(pretrainRng), ShapesLanguage.Caption(scene),
            ShapesLanguage.Conversation(scene, convRng, counts.MinRounds, counts.MaxRounds, counts.ExtraRounds, counts.IndependentRounds), eval);
    }

    static void WriteConversations(Utf8JsonWriter w, Item[] items, bool pretrain)
    {
        w.WriteStartArray();
        foreach (var it in items)
        {
            w.WriteStartObject();
            w.WriteString("id", it.Id);
            w.WriteString("image", it.Image);
            w.WriteStartArray("conversations");
            if (pretrain)
            {
                Turn(w, "human", it.PretrainPrompt);
                Turn(w, "gpt", it.Caption);
            }
            else
            {
                for (int i = 0; i < it.Conversation.Count; i++)
                {
                    Turn(w, "human", i == 0 ? "<image>\n" + it.Conversation[i].Question : it.Conversation[i].Question);
                    Turn(w, "gpt", it.Conversation[i].Answer);
                }
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    /// <summary>One LLaVA conversation turn: {"from": human|gpt, "value": ...}.</summary>
    internal static void Turn(Utf8JsonWriter w, string from, string value)
    {
        w.WriteStartObject();
        w.WriteString("from", from);
        w.WriteString("value", value);
        w.WriteEndObject();
    }

    static void WriteScene(Utf8JsonWriter w, Item it)
    {
        var s = it.Scene;
        w.WriteStartObject();
        w.WriteString("image", it.Image);
        w.WriteString("split", it.Split);
        w.WriteNumber("seed", s.Seed);
        w.WriteNumber("canvas", s.CanvasSize);
        WriteRgb(w, "background", s.Background);
        w.WriteStartArray("shapes");
        foreach (var sh in s.Shapes)
        {
            w.WriteStartObject();
            w.WriteString("kind", ShapeWords.Name(sh.Kind));
            w.WriteString("color", ShapeWords.Name(sh.Color));
            w.WriteString("size", ShapeWords.Name(sh.Size));
            w.WriteString("position", ShapeWords.Name(sh.Position));
            w.WriteNumber("x", Math.Round(sh.CenterX, 3));
            w.WriteNumber("y", Math.Round(sh.CenterY, 3));
            w.WriteNumber("radius", Math.Round(sh.Radius, 3));
            WriteRgb(w, "fill", sh.Fill);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    static void WriteRgb(Utf8JsonWriter w, string name, Rgb c)
    {
        w.WriteStartArray(name);
        w.WriteNumberValue(c.R);
        w.WriteNumberValue(c.G);
        w.WriteNumberValue(c.B);
        w.WriteEndArray();
    }

    static void WriteJson(string path, Action<Utf8JsonWriter> write)
    {
        using var stream = File.Create(path);
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        write(w);
    }
}
