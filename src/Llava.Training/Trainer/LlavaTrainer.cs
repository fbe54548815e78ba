using System.Diagnostics;
using System.Text.Json;
using Llava.Formats;
using Llava.Formats.Safetensors;
using Llava.Models.Llava;
using Llava.Text;
using Llava.Training.Data;
using Llava.Training.Model;
using Llava.Training.Optim;

namespace Llava.Training.Trainer;

/// <summary>How a run ended.</summary>
public sealed record TrainResult(int GlobalStep, int TotalSteps, bool Cancelled, int? ResumedFromStep, string? LastCheckpoint,
    IReadOnlyList<StepMetrics> History, DataReport Report);

/// <summary>
/// LLaVA's training loop (llava/train/train.py + the HF Trainer it drives), one device: frozen CLIP, the mode's
/// trainable parameters, AdamW with LLaVA's parameter groups (mm_projector_lr), cosine schedule with warmup over
/// the total optimizer steps, gradient accumulation, clipping, checkpoint-N saving and automatic resume from the
/// latest checkpoint-* in the output directory. Step order: zero grads → forward/backward over each micro-batch
/// (loss scaled by 1/(supervised positions of the micro-batch · accumulation steps)) → clip → AdamW step with the
/// schedule factor of that step.
/// </summary>
public sealed class LlavaTrainer : IDisposable
{
    public TrainerOptions Options { get; }
    public LlavaModel Frozen { get; }
    public TrainableLlava Model { get; }
    public LlavaDataset Dataset { get; }
    public ITrainingSampler Sampler { get; }
    public AdamW Optimizer { get; }
    public LrSchedule Schedule { get; }
    public int BatchesPerEpoch { get; }
    public int StepsPerEpoch { get; }
    public int TotalSteps { get; }
    public LoraOptions? Lora { get; }

    /// <summary>Called after every optimizer step.</summary>
    public Action<StepMetrics>? OnStep { get; set; }
    /// <summary>Called every logging_steps optimizer steps with a one-line summary (step/total, loss, lr, tokens/s, ETA).</summary>
    public Action<string>? OnLog { get; set; }
    /// <summary>Messages (resume, data report, outputs written).</summary>
    public Action<string>? OnMessage { get; set; }

    readonly DataCollator collator;
    public string MetricsPath => Path.Combine(Options.OutputDir, "metrics.jsonl");
    public string LossCurvePath => Path.Combine(Options.OutputDir, "loss.png");

    public LlavaTrainer(TrainerOptions options, Action<DataWarning>? onDataWarning = null)
    {
        options.Validate();
        Options = options;
        Frozen = LlavaModel.Load(options.ModelPath, new LlavaLoadOptions { VisionTower = options.VisionTower });
        try
        {
            if (Frozen.Config.Layout != CheckpointLayout.Original)
                throw new ArgumentException($"{options.ModelPath}: training needs an original-layout LLaVA checkpoint (LlavaLlamaForCausalLM); this is {Frozen.Config.Layout}");
            var modelMode = options.Mode == TrainingMode.Finetune && options.FreezeBackbone ? TrainingMode.Pretrain : options.Mode;
            Lora = options.Mode == TrainingMode.Lora ? new LoraOptions(options.LoraR, options.LoraAlpha, options.LoraDropout) : null;
            Model = new TrainableLlava(Frozen, modelMode, Lora, options.Seed, options.Bits) { GradientCheckpointing = options.GradientCheckpointing };
            if (options.ReinitProjector) ReinitializeProjector(Model, options.Seed);

            var dataOptions = new LlavaDataOptions
            {
                ImageFolder = options.ImageFolder,
                ImageAspectRatio = options.ImageAspectRatio ?? ModelExport.DefaultAspect(options.Mode),
                MmUseImStartEnd = Frozen.Config.MmUseImStartEnd,
                ModelMaxLength = options.ModelMaxLength,
                Template = ConversationTemplates.Get(options.Version ?? (options.Mode == TrainingMode.Pretrain ? "plain" : "v1")),
                ImageCheck = options.CheckImages ? ImageCheck.Decode : ImageCheck.Exists,
            };
            Dataset = LlavaDataset.Load(options.DataPath, Frozen.Tokenizer, Frozen.ImageProcessor, dataOptions, onDataWarning);
            if (Dataset.Count == 0) throw new LlavaDataException($"{options.DataPath}: no usable record ({Dataset.Report})");
            collator = DataCollator.For(Dataset);
            ulong seed = (ulong)options.Seed;
            Sampler = options.GroupByModalityLength
                ? new LengthGroupedSampler(Dataset.ModalityLengths, options.PerDeviceTrainBatchSize, options.GradientAccumulationSteps, seed)
                : new RandomSampler(Dataset.Count, seed);

            BatchesPerEpoch = options.DataloaderDropLast ? Dataset.Count / options.PerDeviceTrainBatchSize
                : (Dataset.Count + options.PerDeviceTrainBatchSize - 1) / options.PerDeviceTrainBatchSize;
            if (BatchesPerEpoch == 0) throw new ArgumentException($"{Dataset.Count} samples do not fill one batch of {options.PerDeviceTrainBatchSize} with --dataloader-drop-last");
            // HF: num_update_steps_per_epoch = max(len_dataloader // gradient_accumulation_steps, 1).
            StepsPerEpoch = Math.Max(1, BatchesPerEpoch / options.GradientAccumulationSteps);
            TotalSteps = options.MaxSteps > 0 ? options.MaxSteps : (int)Math.Ceiling(options.NumTrainEpochs * StepsPerEpoch);

            var groups = ParameterGroup.ForLlava(Model.Parameters, options.WeightDecay, options.MmProjectorLr);
            Optimizer = new AdamW(groups) { Beta1 = options.AdamBeta1, Beta2 = options.AdamBeta2, Eps = options.AdamEpsilon };
            Schedule = LrSchedule.FromRatio(options.WarmupRatio, TotalSteps);
        }
        catch
        {
            Model?.Dispose();
            Frozen.Dispose();
            throw;
        }
    }

    /// <summary>torch.nn.Linear's default init for the projector (kaiming_uniform(a=√5) → U(±1/√in) for weight and bias), seeded.</summary>
    public static void ReinitializeProjector(TrainableLlava model, int seed)
    {
        var rng = new Random(seed ^ 0x5EED);
        foreach (var p in model.Parameters.Where(p => p.Name.Contains("mm_projector")))
        {
            string w = p.Name.EndsWith(".bias") ? p.Name[..^".bias".Length] + ".weight" : p.Name;
            int fanIn = model.Parameters.First(q => q.Name == w).Shape[1];
            double bound = 1 / Math.Sqrt(fanIn);
            for (int i = 0; i < p.Length; i++) p.Data[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
        }
    }

    /// <summary>Loads a stage-1 projector (mm_projector.safetensors/.bin, keys ending in mm_projector.*) into the model (LLaVA's --pretrain_mm_mlp_adapter).</summary>
    public void LoadPretrainedProjector(string path)
    {
        using var f = Llava.Models.Loading.CheckpointFiles.OpenFile(path);
        int n = 0;
        foreach (var p in Model.Parameters.Where(p => p.Name.StartsWith("model.mm_projector", StringComparison.Ordinal)))
        {
            string suffix = p.Name["model.mm_projector".Length..];
            var key = f.Names.FirstOrDefault(k => k.EndsWith("mm_projector" + suffix, StringComparison.Ordinal))
                ?? throw new ModelFormatException($"{path}: no tensor for {p.Name}");
            ModelExport.CopyInto(p, f.Get(key));
            n++;
        }
        OnMessage?.Invoke($"loaded {n} projector tensors from {path}");
    }

    // ---------------------------------------------------------------- the step

    /// <summary>
    /// Forward + backward of one optimizer step's micro-batches (gradients accumulate; the caller zeroes them first).
    /// Each micro-batch's loss is LLaVA's mean over its own supervised positions, divided by
    /// <paramref name="accumulationSteps"/>; the returned loss is the sum of those (what the HF Trainer logs).
    /// A micro-batch with no supervised position contributes nothing (LLaVA's would be NaN).
    /// </summary>
    public static double ForwardBackward(TrainableLlava model, IReadOnlyList<IReadOnlyList<TrainingExample>> microBatches, int accumulationSteps,
        out int tokens, out int supervised, CancellationToken ct = default)
    {
        double loss = 0;
        tokens = 0; supervised = 0;
        foreach (var mb in microBatches)
        {
            ct.ThrowIfCancellationRequested();
            int n = mb.Sum(model.SupervisedCount);
            tokens += mb.Sum(model.ExpandedLength);
            if (n == 0) continue;
            supervised += n;
            float scale = 1f / ((float)n * accumulationSteps);
            loss += model.ForwardBackward(mb, scale).LossSum / n / accumulationSteps;
        }
        return loss;
    }

    /// <summary>
    /// A collated batch as the model sees it (LLaVA's prepare_inputs_labels_for_multimodal): each row keeps the
    /// positions where attention_mask is 1, the image (if the row has one) replaces its placeholder, and the expanded
    /// sequence is cut to model_max_length.
    /// </summary>
    public static List<TrainingExample> ToExamples(TrainingBatch batch, int numImageTokens, int modelMaxLength)
    {
        var list = new List<TrainingExample>(batch.BatchSize);
        for (int b = 0; b < batch.BatchSize; b++)
        {
            var ids = new List<int>(); var labels = new List<int>();
            var rowIds = batch.InputIdsRow(b); var rowLabels = batch.LabelsRow(b); var mask = batch.AttentionMaskRow(b);
            int expanded = 0;
            for (int t = 0; t < rowIds.Length; t++)
            {
                if (mask[t] == 0) continue;
                int width = rowIds[t] == LlavaConfig.OriginalImageTokenIndex ? numImageTokens : 1;
                if (expanded + width > modelMaxLength) break;   // a partly cut image is dropped with the rest
                expanded += width;
                ids.Add(rowIds[t]); labels.Add(rowLabels[t]);
            }
            float[]? pixels = ids.Contains(LlavaConfig.OriginalImageTokenIndex) && batch.HasImage[b] ? batch.ImageRow(b).ToArray() : null;
            if (pixels is null && ids.Contains(LlavaConfig.OriginalImageTokenIndex))
            {
                // An image placeholder without an image: LLaVA would index past its image list; drop the placeholder.
                int k = ids.IndexOf(LlavaConfig.OriginalImageTokenIndex);
                ids.RemoveAt(k); labels.RemoveAt(k);
            }
            list.Add(new TrainingExample(ids.ToArray(), labels.ToArray(), pixels));
        }
        return list;
    }

    /// <summary>The batches of <paramref name="epoch"/> from sampler position <paramref name="start"/>, with the position after each
    /// (LlavaDataLoader's behaviour: a sample whose image fails is skipped and the batch filled from the next indices).</summary>
    IEnumerable<(TrainingBatch Batch, int End)> Batches(int epoch, int start)
    {
        var order = Sampler.GetIndices(epoch);
        int size = Options.PerDeviceTrainBatchSize;
        int next = start;
        while (next < order.Length)
        {
            var batch = new List<TrainingSample>(size);
            while (batch.Count < size && next < order.Length)
            {
                int take = Math.Min(size - batch.Count, order.Length - next);
                var slots = new TrainingSample?[take];
                int from = next;
                Parallel.For(0, take, k => { if (Dataset.TryGetSample(order[from + k], out var s)) slots[k] = s; });
                next += take;
                foreach (var s in slots) if (s != null) batch.Add(s);
            }
            if (batch.Count == 0 || (Options.DataloaderDropLast && batch.Count < size)) yield break;
            yield return (collator.Collate(batch), next);
        }
    }

    // ---------------------------------------------------------------- the loop

    /// <summary>
    /// Runs (or resumes) training to the total number of steps, then writes the mode's outputs, metrics.jsonl,
    /// trainer_state.json and loss.png. On cancellation, saves checkpoint-N at the last completed step and returns
    /// with <see cref="TrainResult.Cancelled"/> set (no final outputs).
    /// </summary>
    public TrainResult Train(CancellationToken ct = default)
    {
        var o = Options;
        Directory.CreateDirectory(o.OutputDir);
        var state = new TrainerState
        {
            MaxSteps = TotalSteps, Seed = o.Seed, Mode = o.Mode.ToString().ToLowerInvariant(), BatchSize = o.PerDeviceTrainBatchSize,
            GradientAccumulationSteps = o.GradientAccumulationSteps, WarmupSteps = Schedule.WarmupSteps, LrSchedulerType = o.LrSchedulerType,
            Sampler = Sampler is LengthGroupedSampler ? "LengthGroupedSampler(group_by_modality_length)" : "RandomSampler",
            Rng = o.Mode == TrainingMode.Lora && o.LoraDropout > 0
                ? $"seed {o.Seed}: data order = f(seed, epoch); LoRA dropout masks = f(seed, step, example)"
                : $"seed {o.Seed}: data order = f(seed, epoch); no random op in the step",
        };
        int? resumedFrom = null;
        string? resume = o.ResumeFromCheckpoint ?? (o.NoResume ? null : TrainerCheckpoint.Latest(o.OutputDir));
        if (resume is not null)
        {
            var saved = TrainerCheckpoint.ReadState(resume);
            if (saved.Mode != state.Mode) throw new ArgumentException($"{resume} was saved by a {saved.Mode} run; this run is {state.Mode} (use another --output-dir)");
            if (saved.BatchSize != state.BatchSize || saved.GradientAccumulationSteps != state.GradientAccumulationSteps || saved.Seed != state.Seed || saved.Sampler != state.Sampler)
                OnMessage?.Invoke($"warning: {resume} was saved with batch {saved.BatchSize} × accumulation {saved.GradientAccumulationSteps}, seed {saved.Seed}, {saved.Sampler}; the data order will differ");
            if (saved.MaxSteps != TotalSteps)
                OnMessage?.Invoke($"warning: {resume} was saved for {saved.MaxSteps} total steps, this run has {TotalSteps}: the learning-rate schedule changes");
            TrainerCheckpoint.Restore(resume, Model, Optimizer, saved);
            state.GlobalStep = saved.GlobalStep; state.Epoch = saved.Epoch; state.EpochPosition = saved.EpochPosition;
            state.StepsInEpoch = saved.StepsInEpoch; state.OptimizerStepCount = saved.OptimizerStepCount;
            state.TokensSeen = saved.TokensSeen; state.ElapsedSeconds = saved.ElapsedSeconds; state.LogHistory = saved.LogHistory;
            resumedFrom = saved.GlobalStep;
            OnMessage?.Invoke($"resuming from {resume} (step {saved.GlobalStep}/{TotalSteps}, epoch {saved.Epoch}, position {saved.EpochPosition})");
        }
        // metrics.jsonl holds exactly the steps the state knows (a run that died after its last checkpoint is rewound).
        using (var w = new StreamWriter(MetricsPath, append: false))
            foreach (var m in state.LogHistory) w.WriteLine(JsonSerializer.Serialize(m));

        var sw = Stopwatch.StartNew();
        double elapsed0 = state.ElapsedSeconds;
        string? lastCheckpoint = resume;
        int lastSaved = resumedFrom ?? -1;
        bool cancelled = false;
        int accum = o.GradientAccumulationSteps;
        int numImageTokens = Frozen.Config.NumImageTokens;

        string SaveCheckpoint()
        {
            state.ElapsedSeconds = elapsed0 + sw.Elapsed.TotalSeconds;
            state.OptimizerStepCount = Optimizer.StepCount;
            state.NextLrFactor = Factor(state.GlobalStep);
            state.DataReport = Dataset.Report.ToString();
            state.DataWarnings = Dataset.Report.Warnings.Select(x => x.ToString()).ToList();
            var path = TrainerCheckpoint.Save(o.OutputDir, Model, Optimizer, state);
            TrainerCheckpoint.Rotate(o.OutputDir, o.SaveTotalLimit);
            lastSaved = state.GlobalStep;
            OnMessage?.Invoke($"saved {path}");
            return path;
        }

        using var metrics = new StreamWriter(MetricsPath, append: true) { AutoFlush = true };
        try
        {
            while (state.GlobalStep < TotalSteps)
            {
                if (state.StepsInEpoch >= StepsPerEpoch) { state.Epoch++; state.EpochPosition = 0; state.StepsInEpoch = 0; }
                using var batches = Batches(state.Epoch, state.EpochPosition).GetEnumerator();
                bool exhausted = false;
                while (state.StepsInEpoch < StepsPerEpoch && state.GlobalStep < TotalSteps)
                {
                    ct.ThrowIfCancellationRequested();
                    var stepWatch = Stopwatch.StartNew();
                    // HF: when an epoch has fewer batches than accumulation steps, one step takes them all.
                    int want = BatchesPerEpoch < accum ? BatchesPerEpoch : accum;
                    var micro = new List<IReadOnlyList<TrainingExample>>(want);
                    int position = state.EpochPosition;
                    while (micro.Count < want)
                    {
                        ct.ThrowIfCancellationRequested();
                        if (!batches.MoveNext()) { exhausted = true; break; }
                        micro.Add(ToExamples(batches.Current.Batch, numImageTokens, o.ModelMaxLength));
                        position = batches.Current.End;
                    }
                    if (micro.Count == 0) break;

                    Model.ZeroGrad();
                    Model.BeginDropoutStep(state.GlobalStep);   // LoRA dropout masks keyed by (seed, step): a resumed run draws the same
                    double loss = ForwardBackward(Model, micro, accum, out int tokens, out int supervised, ct);
                    double norm = o.MaxGradNorm > 0 ? GradientClipping.ClipByGlobalNorm(Model.Parameters, o.MaxGradNorm) : GlobalNorm(Model.Parameters);
                    double factor = Factor(state.GlobalStep);
                    Optimizer.Step(o.LearningRate, factor);

                    state.GlobalStep++;
                    state.StepsInEpoch++;
                    state.EpochPosition = position;
                    state.TokensSeen += tokens;
                    double stepSeconds = stepWatch.Elapsed.TotalSeconds;
                    double runSeconds = sw.Elapsed.TotalSeconds;
                    int doneThisRun = state.GlobalStep - (resumedFrom ?? 0);
                    var m = new StepMetrics
                    {
                        Step = state.GlobalStep, TotalSteps = TotalSteps,
                        Epoch = Math.Round(state.Epoch + (double)state.StepsInEpoch / StepsPerEpoch, 4),
                        Loss = loss, GradNorm = norm, LearningRate = o.LearningRate * factor,
                        TokensPerSecond = tokens / Math.Max(stepSeconds, 1e-9), Tokens = tokens, SupervisedTokens = supervised,
                        ElapsedSeconds = elapsed0 + runSeconds,
                        EtaSeconds = runSeconds / doneThisRun * (TotalSteps - state.GlobalStep),
                    };
                    state.LogHistory.Add(m);
                    metrics.WriteLine(JsonSerializer.Serialize(m));
                    OnStep?.Invoke(m);
                    if (state.GlobalStep % o.LoggingSteps == 0 || state.GlobalStep == TotalSteps) OnLog?.Invoke(Format(m));
                    if (o.SaveSteps > 0 && state.GlobalStep % o.SaveSteps == 0) lastCheckpoint = SaveCheckpoint();
                    if (exhausted) break;
                }
                // Leftover micro-batches that do not fill a step are dropped (HF's floor); a short epoch ends here.
                if (state.GlobalStep < TotalSteps) { state.StepsInEpoch = StepsPerEpoch; }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            cancelled = true;
        }

        if (cancelled)
        {
            if (lastSaved != state.GlobalStep) lastCheckpoint = SaveCheckpoint();
            OnMessage?.Invoke($"cancelled at step {state.GlobalStep}/{TotalSteps}; run again with the same --output-dir to resume");
            return new TrainResult(state.GlobalStep, TotalSteps, true, resumedFrom, lastCheckpoint, state.LogHistory, Dataset.Report);
        }

        state.ElapsedSeconds = elapsed0 + sw.Elapsed.TotalSeconds;
        state.OptimizerStepCount = Optimizer.StepCount;
        state.DataReport = Dataset.Report.ToString();
        state.DataWarnings = Dataset.Report.Warnings.Select(x => x.ToString()).ToList();
        SaveOutputs(o.OutputDir);
        File.WriteAllText(Path.Combine(o.OutputDir, TrainerCheckpoint.StateFile), JsonSerializer.Serialize(state, TrainerCheckpoint.Json));
        LossCurvePlot.Write(LossCurvePath, state.LogHistory, $"llava {state.Mode}: {Path.GetFileName(Path.GetFullPath(o.OutputDir).TrimEnd('/'))}");
        OnMessage?.Invoke($"data: {Dataset.Report}");
        foreach (var w in Dataset.Report.Warnings.Take(20)) OnMessage?.Invoke($"  {w}");
        return new TrainResult(state.GlobalStep, TotalSteps, false, resumedFrom, lastCheckpoint, state.LogHistory, Dataset.Report);
    }

    double Factor(int step) => Options.LrSchedulerType == "constant"
        ? (step < Schedule.WarmupSteps ? (double)step / Math.Max(1, Schedule.WarmupSteps) : 1)
        : Schedule.Factor(step);

    static double GlobalNorm(IEnumerable<Parameter> ps)
    {
        double s = 0;
        foreach (var p in ps) foreach (float g in p.Grad) s += (double)g * g;
        return Math.Sqrt(s);
    }

    /// <summary>"step 12/100 | loss 2.3456 | lr 1.95e-05 | 1234 tok/s | ETA 0:03:12".</summary>
    public static string Format(StepMetrics m) =>
        $"step {m.Step}/{m.TotalSteps} | epoch {m.Epoch:F2} | loss {m.Loss:F4} | grad norm {m.GradNorm:F3} | lr {m.LearningRate:E2} | {m.TokensPerSecond:F0} tok/s | ETA {TimeSpan.FromSeconds(Math.Round(m.EtaSeconds)):c}";

    /// <summary>Writes the mode's final model files into <paramref name="dir"/> (see <see cref="ModelExport"/>).</summary>
    public void SaveOutputs(string dir)
    {
        switch (Options.Mode)
        {
            case TrainingMode.Pretrain:
                ModelExport.SaveProjector(Model, dir, Options);
                OnMessage?.Invoke($"wrote {Path.Combine(dir, "mm_projector.safetensors")} and config.json");
                break;
            case TrainingMode.Finetune when Options.SaveFormat == CheckpointSaveFormat.HuggingFace:
                ModelExport.SaveHuggingFace(Model, dir, Options.SaveDType, Options);
                OnMessage?.Invoke($"wrote the full checkpoint in the llava-hf layout to {dir} (model.safetensors {ModelExport.TorchDTypeName(Options.SaveDType)} with the CLIP tower, config.json, tokenizer, processor)");
                break;
            case TrainingMode.Finetune:
                ModelExport.SaveFullCheckpoint(Model, dir, Options);
                OnMessage?.Invoke($"wrote the full checkpoint to {dir} (model.safetensors, config.json, tokenizer)");
                break;
            case TrainingMode.Lora:
                ModelExport.SaveLora(Model, dir, Lora!, Options.ModelPath, Options);
                OnMessage?.Invoke($"wrote the LoRA adapter to {dir} (adapter_config.json, adapter_model.safetensors, non_lora_trainables.safetensors); merge with `llava merge-lora`");
                break;
        }
    }

    public void Dispose()
    {
        Model.Dispose();
        Frozen.Dispose();
    }
}
