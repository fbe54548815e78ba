using System.Text.Json;
using System.Text.Json.Serialization;
using Llava.Formats;
using Llava.Formats.Safetensors;
using Llava.Training.Model;
using Llava.Training.Optim;

namespace Llava.Training.Trainer;

/// <summary>One optimizer step as logged to metrics.jsonl (and kept in trainer_state.json's log_history).</summary>
public sealed record StepMetrics
{
    [JsonPropertyName("step")] public int Step { get; init; }
    [JsonPropertyName("total_steps")] public int TotalSteps { get; init; }
    [JsonPropertyName("epoch")] public double Epoch { get; init; }
    /// <summary>Σ over the step's micro-batches of (micro-batch mean loss / gradient_accumulation_steps), as the HF Trainer logs it.</summary>
    [JsonPropertyName("loss")] public double Loss { get; init; }
    /// <summary>Global gradient L2 norm before clipping.</summary>
    [JsonPropertyName("grad_norm")] public double GradNorm { get; init; }
    /// <summary>Base learning rate used for this step (schedule applied).</summary>
    [JsonPropertyName("learning_rate")] public double LearningRate { get; init; }
    /// <summary>Positions through the LLM (text + image tokens) per second of this step's wall time.</summary>
    [JsonPropertyName("tokens_per_second")] public double TokensPerSecond { get; init; }
    [JsonPropertyName("tokens")] public int Tokens { get; init; }
    [JsonPropertyName("supervised_tokens")] public int SupervisedTokens { get; init; }
    [JsonPropertyName("elapsed")] public double ElapsedSeconds { get; init; }
    [JsonPropertyName("eta")] public double EtaSeconds { get; init; }
}

/// <summary>trainer_state.json of a checkpoint: where the loop is, so a resumed run continues exactly.</summary>
public sealed class TrainerState
{
    [JsonPropertyName("global_step")] public int GlobalStep { get; set; }
    [JsonPropertyName("max_steps")] public int MaxSteps { get; set; }
    [JsonPropertyName("epoch")] public int Epoch { get; set; }
    /// <summary>Sampler indices of <see cref="Epoch"/> already consumed (the data loader's position).</summary>
    [JsonPropertyName("epoch_position")] public int EpochPosition { get; set; }
    [JsonPropertyName("steps_in_epoch")] public int StepsInEpoch { get; set; }
    [JsonPropertyName("optimizer_step_count")] public int OptimizerStepCount { get; set; }
    [JsonPropertyName("warmup_steps")] public int WarmupSteps { get; set; }
    [JsonPropertyName("lr_scheduler_type")] public string LrSchedulerType { get; set; } = "cosine";
    /// <summary>Schedule factor of the next step (the scheduler's position).</summary>
    [JsonPropertyName("next_lr_factor")] public double NextLrFactor { get; set; }
    [JsonPropertyName("seed")] public int Seed { get; set; }
    [JsonPropertyName("sampler")] public string Sampler { get; set; } = "";
    /// <summary>The training step has no random operation (LoRA dropout 0, no other dropout); the data order is a pure
    /// function of (seed, epoch); LoRA/projector initialisation is restored from the saved weights. So the RNG state
    /// is the seed.</summary>
    [JsonPropertyName("rng")] public string Rng { get; set; } = "";
    [JsonPropertyName("mode")] public string Mode { get; set; } = "";
    [JsonPropertyName("per_device_train_batch_size")] public int BatchSize { get; set; }
    [JsonPropertyName("gradient_accumulation_steps")] public int GradientAccumulationSteps { get; set; }
    [JsonPropertyName("tokens_seen")] public long TokensSeen { get; set; }
    [JsonPropertyName("elapsed_seconds")] public double ElapsedSeconds { get; set; }
    [JsonPropertyName("data_report")] public string DataReport { get; set; } = "";
    [JsonPropertyName("data_warnings")] public List<string> DataWarnings { get; set; } = new();
    [JsonPropertyName("log_history")] public List<StepMetrics> LogHistory { get; set; } = new();
}

/// <summary>Saving and restoring checkpoint-N directories (trainable weights, AdamW moments, trainer state).</summary>
public static class TrainerCheckpoint
{
    public const string WeightsFile = "trainable.safetensors";
    public const string OptimizerFile = "optimizer.safetensors";
    public const string StateFile = "trainer_state.json";

    internal static readonly JsonSerializerOptions Json = new() { WriteIndented = true, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>checkpoint-* directories of <paramref name="outputDir"/> with a complete state, by step, ascending.</summary>
    public static List<(int Step, string Path)> List(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return new();
        var list = new List<(int, string)>();
        foreach (var d in Directory.GetDirectories(outputDir, "checkpoint-*"))
        {
            var name = Path.GetFileName(d);
            if (int.TryParse(name["checkpoint-".Length..], out int step) && File.Exists(Path.Combine(d, StateFile))) list.Add((step, d));
        }
        list.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return list;
    }

    /// <summary>The latest complete checkpoint (HF's get_last_checkpoint), or null.</summary>
    public static string? Latest(string outputDir) => List(outputDir) is { Count: > 0 } l ? l[^1].Path : null;

    /// <summary>Writes checkpoint-{state.GlobalStep} atomically (a temporary directory renamed at the end).</summary>
    public static string Save(string outputDir, TrainableLlava model, AdamW optimizer, TrainerState state)
    {
        string final = Path.Combine(outputDir, $"checkpoint-{state.GlobalStep}");
        string tmp = final + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        var ps = model.Parameters;
        SafetensorsWriter.Write(Path.Combine(tmp, WeightsFile),
            ps.Select(p => SafetensorsWriter.F32(p.Name, p.Shape.Select(d => (long)d).ToArray(), p.Data)));
        var moments = new List<SafetensorsWriter.Entry>();
        foreach (var p in ps)
        {
            if (p.ExpAvg is null || p.ExpAvgSq is null) continue;
            var shape = p.Shape.Select(d => (long)d).ToArray();
            moments.Add(SafetensorsWriter.F32("exp_avg." + p.Name, shape, p.ExpAvg));
            moments.Add(SafetensorsWriter.F32("exp_avg_sq." + p.Name, shape, p.ExpAvgSq));
        }
        SafetensorsWriter.Write(Path.Combine(tmp, OptimizerFile), moments,
            new Dictionary<string, string> { ["step"] = optimizer.StepCount.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        File.WriteAllText(Path.Combine(tmp, StateFile), JsonSerializer.Serialize(state, Json));
        if (Directory.Exists(final)) Directory.Delete(final, true);
        Directory.Move(tmp, final);
        return final;
    }

    public static TrainerState ReadState(string checkpointDir)
    {
        var path = Path.Combine(checkpointDir, StateFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"{checkpointDir}: no {StateFile} (not a training checkpoint)", path);
        return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(path), Json) ?? throw new ModelFormatException($"{path}: empty state");
    }

    /// <summary>Restores weights and AdamW moments/step count; every trainable parameter must be present with its shape.</summary>
    public static void Restore(string checkpointDir, TrainableLlava model, AdamW optimizer, TrainerState state)
    {
        using (var w = SafetensorsFile.Open(Path.Combine(checkpointDir, WeightsFile)))
        {
            var missing = model.Parameters.Where(p => !w.Contains(p.Name)).Select(p => p.Name).ToList();
            if (missing.Count > 0)
                throw new ModelFormatException($"{checkpointDir}: the checkpoint lacks {missing.Count} trainable parameter(s) ({string.Join(", ", missing.Take(3))}...); was it saved in another mode?");
            foreach (var p in model.Parameters) ModelExport.CopyInto(p, w.Get(p.Name));
        }
        using (var o = SafetensorsFile.Open(Path.Combine(checkpointDir, OptimizerFile)))
        {
            foreach (var p in model.Parameters)
            {
                if (!o.TryGet("exp_avg." + p.Name, out var m)) { p.ExpAvg = null; p.ExpAvgSq = null; continue; }
                p.ExpAvg = new float[p.Length];
                p.ExpAvgSq = new float[p.Length];
                m.ReadFloat32(0, p.ExpAvg);
                o.Get("exp_avg_sq." + p.Name).ReadFloat32(0, p.ExpAvgSq);
            }
        }
        optimizer.StepCount = state.OptimizerStepCount;
    }

    /// <summary>Deletes the oldest checkpoints beyond <paramref name="limit"/> (HF's _rotate_checkpoints).</summary>
    public static void Rotate(string outputDir, int? limit)
    {
        if (limit is not int keep) return;
        var list = List(outputDir);
        for (int i = 0; i < list.Count - keep; i++) Directory.Delete(list[i].Path, true);
    }
}
