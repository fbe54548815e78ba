using System.Diagnostics;
using System.Globalization;
using Llava.Training.Data;
using Llava.Training.Model;
using Llava.Training.Synthetic;
using Llava.Training.Trainer;
using Llava.Vision;

namespace Llava.Training.Recipe;

/// <summary>Sizes and schedules of every stage of <see cref="MicroLlavaRecipe"/>. The defaults are the shipped model's recipe.</summary>
public sealed record MicroRecipeOptions
{
    public required string WorkDir { get; init; }
    public MicroLlavaConfig Model { get; init; } = MicroLlavaConfig.Default;
    public int Seed { get; init; } = 1;
    /// <summary>Stop after this stage (init, data, vision, text, stage1); null runs all.</summary>
    public string? StopAfter { get; init; }

    /// <summary>Shapes-world images for stages 1 and 2, and held-out images for evaluation.</summary>
    public int TrainImages { get; init; } = 8000;
    public int HeldOutImages { get; init; } = 300;
    /// <summary>Question/answer rounds per stage-2 conversation (distinct question types): more rounds per image put more supervised tokens against each image's 64 positions and the system prompt.</summary>
    public int MinRounds { get; init; } = 4;
    public int MaxRounds { get; init; } = 7;
    /// <summary>Extra stage-2 rounds per conversation of the kind-keyed and yes/no types (<see cref="ShapesDatasetCounts.ExtraRounds"/>).</summary>
    public int ExtraRounds { get; init; } = 0;
    /// <summary>Stage-2 rounds that cannot be answered from earlier turns (<see cref="ShapesDatasetCounts.IndependentRounds"/>).</summary>
    public bool IndependentRounds { get; init; }

    public VisionPretrainOptions Vision { get; init; } = new();

    public RecipeStage Text { get; init; } = new(Steps: 80, BatchSize: 16, LearningRate: 1e-3, Samples: 1280);
    public RecipeStage Stage1 { get; init; } = new(Steps: 100, BatchSize: 16, LearningRate: 1e-3);
    public RecipeStage Stage2 { get; init; } = new(Steps: 1400, BatchSize: 8, LearningRate: 1e-3);

    /// <summary>A few steps per stage: checks the whole pipeline in about a minute (tests, CI); the model learns nothing useful.</summary>
    public static MicroRecipeOptions Smoke(string workDir) => new()
    {
        WorkDir = workDir,
        TrainImages = 64, HeldOutImages = 8,
        Vision = new VisionPretrainOptions { Steps = 3, BatchSize = 4 },
        Text = new RecipeStage(Steps: 3, BatchSize: 4, LearningRate: 1e-3, Samples: 32),
        Stage1 = new RecipeStage(Steps: 3, BatchSize: 4, LearningRate: 1e-3),
        Stage2 = new RecipeStage(Steps: 3, BatchSize: 4, LearningRate: 5e-4),
    };
}

/// <summary>One LLaVA-trainer stage: optimizer steps, batch, peak learning rate (cosine, 3% warmup), and for text pretraining the number of generated conversations.</summary>
public sealed record RecipeStage(int Steps, int BatchSize, double LearningRate, int Samples = 0, double WeightDecay = 0);

/// <summary>Progress of the running stage.</summary>
public readonly record struct RecipeProgress(string Stage, int Step, int Total, string Detail);

/// <summary>What a finished stage took.</summary>
public sealed record RecipeStageReport(string Name, double Seconds, string Summary, bool Reused);

/// <summary>Where the recipe's results are.</summary>
public sealed record MicroRecipeResult(string ModelDir, string VisionDir, string DataDir, IReadOnlyList<RecipeStageReport> Stages)
{
    /// <summary>All stages ran (not stopped early by <see cref="MicroRecipeOptions.StopAfter"/>).</summary>
    public bool Complete => Stages.Count > 0 && Stages[^1].Name == "stage2";
    public double Seconds => Stages.Where(s => !s.Reused).Sum(s => s.Seconds);
}

/// <summary>
/// The micro LLaVA, trained from scratch on this machine in LLaVA's stages:
/// <list type="number">
/// <item>data: the shapes world at the tower's image size (`llava data shapes`): captions, conversations, a held-out split;</item>
/// <item>vision: the ViT pretrained by dense per-patch prediction (<see cref="VisionPretrainer"/>);</item>
/// <item>text: the LLaMA pretrained on text-only conversations about captioned scenes (<see cref="RecipeTextData"/>), vicuna_v1;</item>
/// <item>stage 1: LLaVA feature alignment, projector only, plain template, captions;</item>
/// <item>stage 2: LLaVA visual instruction tuning, projector + LLM, vicuna_v1, multi-turn questions.</item>
/// </list>
/// Every stage writes into its own folder of <see cref="MicroRecipeOptions.WorkDir"/> and a DONE marker when it
/// finishes; a rerun reuses finished stages, so an interrupted recipe continues where it stopped.
/// </summary>
public sealed class MicroLlavaRecipe
{
    readonly MicroRecipeOptions o;
    readonly List<RecipeStageReport> reports = [];

    public Action<RecipeProgress>? OnProgress { get; set; }
    public Action<string>? OnMessage { get; set; }
    public Action<RecipeStageReport>? OnStageDone { get; set; }

    public MicroLlavaRecipe(MicroRecipeOptions options)
    {
        options.Model.Validate();
        o = options;
    }

    string Dir(string name) => Path.Combine(o.WorkDir, name);

    public MicroRecipeResult Run(CancellationToken ct = default)
    {
        Directory.CreateDirectory(o.WorkDir);
        var c = o.Model;
        string init = Dir("init"), data = Dir("data"), vision = Dir("vision"), text = Dir("text"), stage1 = Dir("stage1"), stage2 = Dir("stage2");

        MicroRecipeResult Partial() => new(stage2, vision, data, reports);
        Stage("init", init, () =>
        {
            var ck = MicroLlavaFactory.Create(init, c, o.Seed);
            return $"{ck.Parameters / 1e6:F2}M parameters";
        });
        if (o.StopAfter == "init") return Partial();

        Stage("data", data, () =>
        {
            var r = ShapesDataset.Write(data, new ShapesDatasetCounts(o.TrainImages, o.HeldOutImages, MinRounds: o.MinRounds, MaxRounds: o.MaxRounds, ExtraRounds: o.ExtraRounds, IndependentRounds: o.IndependentRounds), o.Seed,
                new ShapesWorldOptions { CanvasSize = c.ImageSize },
                new Progress<ShapesDatasetProgress>(p => OnProgress?.Invoke(new RecipeProgress("data", p.ImagesDone, p.ImagesTotal, "drawing scenes"))), ct);
            RecipeTextData.Write(Path.Combine(data, "text.json"), o.Text.Samples, o.Seed);
            return $"{r.TrainImages} training + {r.HeldOutImages} held-out images, {r.EvalRecords} eval questions, {o.Text.Samples} text conversations";
        });
        if (o.StopAfter == "data") return Partial();

        Stage("vision", vision, () =>
        {
            var tower = new TrainableClipVision(c.Vision, o.Seed);
            var processor = ClipImageProcessor.FromFile(Path.Combine(init, c.VisionDirName, "preprocessor_config.json"));
            var pre = new VisionPretrainer(tower, processor, o.Seed);
            // The CLS head only helps when the language model sees the CLS token.
            var vo = o.Vision with { FeatureLayer = c.VisionSelectLayer, GlobalWeight = c.VisionSelectFeature == "cls_patch" ? o.Vision.GlobalWeight : 0 };
            var hist = pre.Train(vo, s =>
                OnProgress?.Invoke(new RecipeProgress("vision", s.Step, s.TotalSteps,
                    $"loss {s.Loss:F4} patches {s.PatchAccuracy:P1} shapes {s.ShapeAccuracy:P1} (kind {s.KindAccuracy:P0} colour {s.ColorAccuracy:P0} size {s.SizeAccuracy:P0} position {s.PositionAccuracy:P0}; per shape kind {s.ShapeKindAccuracy:P0}){(double.IsNaN(s.GlobalAccuracy) ? "" : $" scene {s.GlobalAccuracy:P0}")} {s.ImagesPerSecond:F0} img/s")), ct);
            tower.Save(vision);
            var last = hist.TakeLast(Math.Min(20, hist.Count)).ToList();
            return $"{hist.Count} steps × {o.Vision.BatchSize} images, final loss {last.Average(s => s.Loss):F4}, patch accuracy {last.Average(s => s.PatchAccuracy):P1}, on shapes {last.Average(s => s.ShapeAccuracy):P1} (kind {last.Average(s => s.KindAccuracy):P1}, colour {last.Average(s => s.ColorAccuracy):P1}, size {last.Average(s => s.SizeAccuracy):P1}, position {last.Average(s => s.PositionAccuracy):P1}), kind per shape {last.Average(s => s.ShapeKindAccuracy):P1}{(vo.GlobalWeight > 0 ? $", scene-level heads (CLS) all right {last.Average(s => s.GlobalAccuracy):P1}" : "")}";
        });
        if (o.StopAfter == "vision") return Partial();

        string initModel = Path.Combine(init, c.ModelDirName);
        Stage("text", text, () => RunTrainer("text", TrainingMode.Finetune, initModel, vision, Path.Combine(data, "text.json"), "", text, o.Text, "v1", null, ct));
        if (o.StopAfter == "text") return Partial();
        Stage("stage1", stage1, () => RunTrainer("stage1", TrainingMode.Pretrain, text, vision, Path.Combine(data, "pretrain.json"), Path.Combine(data, "images"), stage1, o.Stage1, "plain", null, ct));
        if (o.StopAfter == "stage1") return Partial();
        string adapter = Directory.EnumerateFiles(stage1, "mm_projector.*").FirstOrDefault()
            ?? throw new FileNotFoundException($"{stage1}: stage 1 wrote no mm_projector file");
        Stage("stage2", stage2, () => RunTrainer("stage2", TrainingMode.Finetune, text, vision, Path.Combine(data, "finetune.json"), Path.Combine(data, "images"), stage2, o.Stage2, "v1", adapter, ct));

        return Partial();
    }

    void Stage(string name, string dir, Func<string> run)
    {
        string marker = Path.Combine(dir, "DONE");
        if (File.Exists(marker))
        {
            var lines = File.ReadAllLines(marker);
            var reused = new RecipeStageReport(name, double.Parse(lines[0], CultureInfo.InvariantCulture), lines.Length > 1 ? lines[1] : "", Reused: true);
            reports.Add(reused);
            OnStageDone?.Invoke(reused);
            return;
        }
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);   // an unfinished stage starts over
        Directory.CreateDirectory(dir);
        var clock = Stopwatch.StartNew();
        string summary = run();
        double seconds = clock.Elapsed.TotalSeconds;
        File.WriteAllLines(marker, [seconds.ToString("R", CultureInfo.InvariantCulture), summary]);
        var report = new RecipeStageReport(name, seconds, summary, Reused: false);
        reports.Add(report);
        OnStageDone?.Invoke(report);
    }

    string RunTrainer(string name, TrainingMode mode, string model, string vision, string dataPath, string imageFolder, string output,
        RecipeStage s, string version, string? adapter, CancellationToken ct)
    {
        var options = new TrainerOptions
        {
            Mode = mode, ModelPath = model, VisionTower = vision, DataPath = dataPath, ImageFolder = imageFolder, OutputDir = output,
            Version = version, PerDeviceTrainBatchSize = s.BatchSize, LearningRate = s.LearningRate, MaxSteps = s.Steps,
            WarmupRatio = 0.03, WeightDecay = s.WeightDecay, MaxGradNorm = 1.0, SaveSteps = 0, SaveTotalLimit = 1, NoResume = true,
            Seed = o.Seed, ReinitProjector = mode == TrainingMode.Pretrain,
            ImageAspectRatio = mode == TrainingMode.Pretrain ? ImageAspectRatio.Square : ImageAspectRatio.Pad,
        };
        int warnings = 0;
        using var trainer = new LlavaTrainer(options, w => { if (warnings++ < 5) OnMessage?.Invoke($"{name}: data: {w}"); });
        if (adapter != null) trainer.LoadPretrainedProjector(adapter);
        trainer.OnStep = m => OnProgress?.Invoke(new RecipeProgress(name, m.Step, m.TotalSteps,
            $"loss {m.Loss:F4} lr {m.LearningRate:E2} {m.TokensPerSecond:F0} tok/s"));
        var result = trainer.Train(ct);
        if (result.Cancelled) throw new OperationCanceledException($"{name} interrupted at step {result.GlobalStep}");
        foreach (var ck in Directory.EnumerateDirectories(output, "checkpoint-*")) Directory.Delete(ck, recursive: true);   // optimizer state: not needed once the stage is done
        var tail = result.History.TakeLast(Math.Min(20, result.History.Count)).ToList();
        double tokens = result.History.Sum(h => (double)h.Tokens);
        return $"{result.GlobalStep} steps × {s.BatchSize}, final loss {tail.Average(h => h.Loss):F4}, {tokens / 1e6:F2}M tokens";
    }
}
