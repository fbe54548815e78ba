using System.CommandLine;
using System.Runtime.InteropServices;
using Llava.Training.Data;
using Llava.Training.Model;
using Llava.Training.Trainer;
using Spectre.Console;

namespace Llava.Cli;

/// <summary>
/// `llava train pretrain|finetune|lora`: LLaVA's training (llava/train/train.py with the HF Trainer) on one machine.
/// Progress on stderr, metrics.jsonl + loss.png + checkpoints in --output-dir, automatic resume from the latest
/// checkpoint-*, Ctrl-C saves a checkpoint before exiting.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var mode = new Argument<string>("mode") { Description = "pretrain (projector only, LLaVA stage 1), finetune (projector + LLM, stage 2) or lora (LoRA on the LLM + projector)." };
        mode.AcceptOnlyFromAmong("pretrain", "finetune", "lora");
        var model = new Option<string>("--model", "-m", "--model-name-or-path") { Description = "Original-layout LLaVA checkpoint directory to start from (--model_name_or_path).", Required = true };
        var tower = new Option<string?>("--vision-tower") { Description = "CLIP checkpoint directory (default: the checkpoint's mm_vision_tower as a local path)." };
        var data = new Option<string>("--data", "--data-path") { Description = "LLaVA-format JSON list of records (--data_path).", Required = true };
        var images = new Option<string>("--image-folder") { Description = "Folder the records' image paths are relative to (--image_folder).", DefaultValueFactory = _ => "" };
        var outDir = new Option<string>("--output-dir", "-o") { Description = "Checkpoints, metrics.jsonl, loss.png and the final model (--output_dir).", Required = true };
        var version = new Option<string?>("--version") { Description = "Conversation template of the data (--version; default plain for pretrain, v1 otherwise)." };
        var batch = new Option<int>("--per-device-train-batch-size", "--per-device-batch-size", "--batch-size") { Description = "Samples per forward (micro-batch).", DefaultValueFactory = _ => 8 };
        var accum = new Option<int>("--gradient-accumulation-steps") { Description = "Micro-batches per optimizer step; each micro-batch loss is divided by this (HF Trainer).", DefaultValueFactory = _ => 1 };
        var lr = new Option<double>("--learning-rate", "--lr") { Description = "Peak learning rate (LLaVA: 1e-3 pretrain, 2e-5 finetune, 2e-4 lora).", DefaultValueFactory = _ => 5e-5 };
        var projLr = new Option<double?>("--mm-projector-lr") { Description = "Separate learning rate for the projector (default: --learning-rate)." };
        var epochs = new Option<double>("--num-train-epochs", "--epochs") { Description = "Epochs (fractional allowed).", DefaultValueFactory = _ => 3 };
        var maxSteps = new Option<int>("--max-steps") { Description = "Total optimizer steps; overrides --num-train-epochs when > 0.", DefaultValueFactory = _ => -1 };
        var wd = new Option<double>("--weight-decay") { Description = "AdamW decoupled weight decay (not on biases and norms).", DefaultValueFactory = _ => 0 };
        var warmup = new Option<double>("--warmup-ratio") { Description = "Fraction of the steps with linear warmup (LLaVA: 0.03).", DefaultValueFactory = _ => 0 };
        var sched = new Option<string>("--lr-scheduler-type") { Description = "cosine (LLaVA) or constant.", DefaultValueFactory = _ => "cosine" };
        sched.AcceptOnlyFromAmong("cosine", "constant");
        var clip = new Option<double>("--max-grad-norm") { Description = "Clip the global gradient norm to this (0 = off).", DefaultValueFactory = _ => 1.0 };
        var maxLen = new Option<int>("--model-max-length") { Description = "Longest sequence in positions, image tokens included.", DefaultValueFactory = _ => 2048 };
        var aspect = new Option<string?>("--image-aspect-ratio") { Description = "pad (LLaVA-1.5 finetune) or square (default: square for pretrain, pad otherwise)." };
        aspect.AcceptOnlyFromAmong("pad", "square");
        var group = new Option<bool>("--group-by-modality-length") { Description = "Batch image and text-only samples separately, grouped by length (LLaVA's LengthGroupedSampler)." };
        var seed = new Option<int>("--seed") { Description = "Seed of the data order and the LoRA initialisation.", DefaultValueFactory = _ => 42 };
        var saveSteps = new Option<int>("--save-steps") { Description = "Save checkpoint-N every N optimizer steps (0 = only on Ctrl-C).", DefaultValueFactory = _ => 500 };
        var saveLimit = new Option<int?>("--save-total-limit") { Description = "Keep at most this many checkpoints (oldest deleted)." };
        var loraR = new Option<int>("--lora-r") { Description = "LoRA rank.", DefaultValueFactory = _ => 64 };
        var loraAlpha = new Option<float>("--lora-alpha") { Description = "LoRA alpha (scaling = alpha / r).", DefaultValueFactory = _ => 16 };
        var loraDropout = new Option<float>("--lora-dropout") { Description = "LoRA dropout on the adapters' input (PEFT; training only, seeded). LLaVA's default is 0.05.", DefaultValueFactory = _ => 0 };
        var freeze = new Option<bool>("--freeze-backbone") { Description = "finetune: keep the LLM frozen (train the projector only)." };
        var ckpt = new Option<bool>("--gradient-checkpointing") { Description = "Recompute activations in the backward (less memory, same numbers)." };
        var logSteps = new Option<int>("--logging-steps") { Description = "Print a progress line every N optimizer steps (metrics.jsonl gets every step).", DefaultValueFactory = _ => 1 };
        var resume = new Option<string?>("--resume-from-checkpoint") { Description = "Resume from this checkpoint directory (default: the latest checkpoint-* in --output-dir)." };
        var noResume = new Option<bool>("--no-resume") { Description = "Start from scratch even if --output-dir holds checkpoints." };
        var pretrainAdapter = new Option<string?>("--pretrain-mm-mlp-adapter") { Description = "Start the projector from a stage-1 mm_projector file (.safetensors or .bin)." };
        var reinit = new Option<bool>("--reinit-projector") { Description = "Re-initialise the projector like torch.nn.Linear (stage 1 from scratch)." };
        var checkImages = new Option<bool>("--check-images") { Description = "Decode every image at load time (finds corrupt files before training)." };
        var dropLast = new Option<bool>("--dataloader-drop-last") { Description = "Drop the last incomplete batch of each epoch." };
        var bits = new Option<int?>("--bits") { Description = "lora: QLoRA, quantize the frozen LLaMA linears at load: 8 (Q8_0) or 4 (Q4_K, Q4_0 fallback); LoRA adapters stay f32." };
        bits.AcceptOnlyFromAmong("4", "8");
        var saveFormat = new Option<string>("--save-format") { Description = "Layout of finetune's final checkpoint: original (LLaVA's, default) or hf (llava-hf LlavaForConditionalGeneration, CLIP tower included).", DefaultValueFactory = _ => "original" };
        saveFormat.AcceptOnlyFromAmong("original", "hf");
        var saveDtype = new Option<string>("--save-dtype") { Description = "Tensor dtype of an hf checkpoint: bf16 (default), f16 or f32.", DefaultValueFactory = _ => "bf16" };
        saveDtype.AcceptOnlyFromAmong("bf16", "f16", "f32");
        var threads = new Option<int?>("--threads", "-t") { Description = "Worker threads (default: all cores)." };

        var cmd = new Command("train", "Train LLaVA: stage 1 (pretrain: projector), stage 2 (finetune: projector + LLM) or LoRA, as LLaVA's train.py with the HF Trainer.");
        cmd.Arguments.Add(mode);
        foreach (var o in new Option[] { model, tower, data, images, outDir, version, batch, accum, lr, projLr, epochs, maxSteps, wd, warmup, sched, clip, maxLen, aspect,
                     group, seed, saveSteps, saveLimit, loraR, loraAlpha, loraDropout, freeze, ckpt, logSteps, resume, noResume, pretrainAdapter, reinit, checkImages, dropLast,
                     bits, saveFormat, saveDtype, threads })
            cmd.Options.Add(o);

        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Cli.Guard(() =>
        {
            try { return Run(r, ct); }
            catch (Exception e) when (e is LlavaDataException or NotSupportedException or IOException and not FileNotFoundException and not DirectoryNotFoundException)
            {
                throw new CliException(e.Message);
            }
        })));
        return cmd;

        int Run(ParseResult r, CancellationToken outer)
        {
            // Ctrl-C / SIGTERM: finish or abandon the current step, save a checkpoint, exit 130 (independent of the
            // invocation's own termination timeout, so a long save is never cut short).
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(outer);
            void Stop(PosixSignalContext c) { c.Cancel = true; cts.Cancel(); }
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
            var ct = cts.Token;
            if (r.GetValue(threads) is int n)
            {
                if (n < 1) throw new CliException("--threads must be at least 1");
                Llava.Tensors.Workers.SetThreadCount(n);
            }
            var options = new TrainerOptions
            {
                Mode = r.GetValue(mode) switch { "pretrain" => TrainingMode.Pretrain, "lora" => TrainingMode.Lora, _ => TrainingMode.Finetune },
                ModelPath = r.GetValue(model)!,
                VisionTower = r.GetValue(tower),
                DataPath = r.GetValue(data)!,
                ImageFolder = r.GetValue(images) ?? "",
                OutputDir = r.GetValue(outDir)!,
                Version = r.GetValue(version),
                PerDeviceTrainBatchSize = r.GetValue(batch),
                GradientAccumulationSteps = r.GetValue(accum),
                LearningRate = r.GetValue(lr),
                MmProjectorLr = r.GetValue(projLr),
                NumTrainEpochs = r.GetValue(epochs),
                MaxSteps = r.GetValue(maxSteps),
                WeightDecay = r.GetValue(wd),
                WarmupRatio = r.GetValue(warmup),
                LrSchedulerType = r.GetValue(sched) ?? "cosine",
                MaxGradNorm = r.GetValue(clip),
                ModelMaxLength = r.GetValue(maxLen),
                ImageAspectRatio = r.GetValue(aspect) switch { "pad" => ImageAspectRatio.Pad, "square" => ImageAspectRatio.Square, _ => null },
                GroupByModalityLength = r.GetValue(group),
                Seed = r.GetValue(seed),
                SaveSteps = r.GetValue(saveSteps),
                SaveTotalLimit = r.GetValue(saveLimit),
                LoraR = r.GetValue(loraR),
                LoraAlpha = r.GetValue(loraAlpha),
                LoraDropout = r.GetValue(loraDropout),
                FreezeBackbone = r.GetValue(freeze),
                GradientCheckpointing = r.GetValue(ckpt),
                LoggingSteps = r.GetValue(logSteps),
                ResumeFromCheckpoint = r.GetValue(resume),
                NoResume = r.GetValue(noResume),
                ReinitProjector = r.GetValue(reinit),
                CheckImages = r.GetValue(checkImages),
                DataloaderDropLast = r.GetValue(dropLast),
                Bits = r.GetValue(bits),
                SaveFormat = r.GetValue(saveFormat) == "hf" ? CheckpointSaveFormat.HuggingFace : CheckpointSaveFormat.Original,
                SaveDType = ModelExport.ParseSaveDType(r.GetValue(saveDtype) ?? "bf16"),
            };
            var err = ModelLoading.Err;
            int warnings = 0;
            using var trainer = new LlavaTrainer(options, w => { if (warnings++ < 20) err.MarkupLine($"[yellow]data:[/] {Markup.Escape(w.ToString())}"); });
            if (r.GetValue(pretrainAdapter) is string adapter) trainer.LoadPretrainedProjector(adapter);
            int trainable = trainer.Model.Parameters.Sum(p => p.Length);
            err.MarkupLine($"[grey]{options.Mode.ToString().ToLowerInvariant()}: {trainer.Dataset.Count} samples, {trainable / 1e6:F2}M trainable parameters, " +
                           $"batch {options.PerDeviceTrainBatchSize} × accumulation {options.GradientAccumulationSteps}, {trainer.StepsPerEpoch} steps/epoch, {trainer.TotalSteps} steps[/]");
            if (trainer.Model.BaseBits is int b)
                err.MarkupLine($"[grey]QLoRA {b}-bit: frozen LLaMA linears {trainer.Model.FrozenBaseBytes / 1048576.0:F1} MiB in memory (stored: {trainer.Model.FrozenBaseSourceBytes / 1048576.0:F1} MiB)[/]");
            trainer.OnMessage = m => err.MarkupLine($"[grey]{Markup.Escape(m)}[/]");

            TrainResult result;
            if (Console.IsErrorRedirected)
            {
                trainer.OnLog = line => err.WriteLine(line);
                result = trainer.Train(ct);
            }
            else
            {
                TrainResult? res = null;
                err.Progress()
                    .AutoClear(false)
                    .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask("training", maxValue: trainer.TotalSteps);
                        trainer.OnStep = m =>
                        {
                            task.Value = m.Step;
                            task.Description = $"step {m.Step}/{m.TotalSteps} loss {m.Loss:F4} lr {m.LearningRate:E2} {m.TokensPerSecond:F0} tok/s";
                        };
                        trainer.OnLog = line => err.MarkupLine($"[grey]{Markup.Escape(line)}[/]");
                        res = trainer.Train(ct);
                        task.Value = res.GlobalStep;
                    });
                result = res!;
            }
            if (result.Cancelled)
            {
                err.MarkupLine($"[yellow]interrupted[/] at step {result.GlobalStep}/{result.TotalSteps}; checkpoint: {Markup.Escape(result.LastCheckpoint ?? "none")}. Run the same command again to resume.");
                return 130;
            }
            var last = result.History.Count > 0 ? result.History[^1] : null;
            err.MarkupLine($"[green]done[/]: {result.GlobalStep} steps{(last is null ? "" : $", final loss {last.Loss:F4}")}; outputs in {Markup.Escape(options.OutputDir)} (metrics.jsonl, loss.png)");
            return 0;
        }
    }
}
