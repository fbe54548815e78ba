using Llava.Training.Data;
using Llava.Training.Model;

namespace Llava.Training.Trainer;

/// <summary>
/// Everything a training run needs, named after LLaVA's flags (llava/train/train.py ModelArguments, DataArguments,
/// TrainingArguments and the Hugging Face TrainingArguments its scripts pass). Defaults are the Hugging Face / LLaVA
/// defaults unless stated. One device (world size 1): the global batch is <see cref="PerDeviceTrainBatchSize"/> ×
/// <see cref="GradientAccumulationSteps"/>.
/// </summary>
public sealed record TrainerOptions
{
    /// <summary>What trains: pretrain = --tune_mm_mlp_adapter True (projector only); finetune = projector + LLM;
    /// lora = --lora_enable True (LoRA on q,k,v,o,gate,up,down + the projector).</summary>
    public TrainingMode Mode { get; init; } = TrainingMode.Finetune;
    /// <summary>--model_name_or_path: an original-layout LLaVA checkpoint directory (config.json with mm_* keys, weights, tokenizer).</summary>
    public required string ModelPath { get; init; }
    /// <summary>--vision_tower: the CLIP checkpoint directory (default: the checkpoint's mm_vision_tower as a local path).</summary>
    public string? VisionTower { get; init; }
    /// <summary>--data_path: a LLaVA-format JSON list of records.</summary>
    public required string DataPath { get; init; }
    /// <summary>--image_folder: image paths in the records are relative to it.</summary>
    public string ImageFolder { get; init; } = "";
    /// <summary>--output_dir: checkpoints, metrics.jsonl, loss.png and the final model.</summary>
    public required string OutputDir { get; init; }
    /// <summary>--version: conversation template for the data (default: plain for pretrain, v1 otherwise, as LLaVA's scripts).</summary>
    public string? Version { get; init; }
    /// <summary>--per_device_train_batch_size (HF default 8).</summary>
    public int PerDeviceTrainBatchSize { get; init; } = 8;
    /// <summary>--gradient_accumulation_steps: micro-batches per optimizer step. Each micro-batch's loss is LLaVA's mean
    /// over its own supervised positions, divided by this number (as the HF Trainer does), and the gradients add up.</summary>
    public int GradientAccumulationSteps { get; init; } = 1;
    /// <summary>--learning_rate (HF default 5e-5).</summary>
    public double LearningRate { get; init; } = 5e-5;
    /// <summary>--mm_projector_lr: a separate learning rate for the projector (null = --learning_rate).</summary>
    public double? MmProjectorLr { get; init; }
    /// <summary>--num_train_epochs (HF default 3; fractional allowed).</summary>
    public double NumTrainEpochs { get; init; } = 3;
    /// <summary>--max_steps: if &gt; 0, the total number of optimizer steps (overrides --num_train_epochs).</summary>
    public int MaxSteps { get; init; } = -1;
    /// <summary>--weight_decay (default 0): decoupled AdamW decay on everything but biases and norms.</summary>
    public double WeightDecay { get; init; }
    /// <summary>--warmup_ratio (default 0; LLaVA's scripts use 0.03): linear warmup over ceil(ratio × total steps).</summary>
    public double WarmupRatio { get; init; }
    /// <summary>--lr_scheduler_type: only "cosine" (LLaVA's scripts) and "constant" are implemented.</summary>
    public string LrSchedulerType { get; init; } = "cosine";
    /// <summary>--adam_beta1 / --adam_beta2 / --adam_epsilon (HF defaults).</summary>
    public double AdamBeta1 { get; init; } = 0.9;
    public double AdamBeta2 { get; init; } = 0.999;
    public double AdamEpsilon { get; init; } = 1e-8;
    /// <summary>--max_grad_norm (default 1.0; 0 or less disables clipping).</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>--model_max_length: sequences are cut to this many positions (image tokens included), as LLaVA does.</summary>
    public int ModelMaxLength { get; init; } = 2048;
    /// <summary>--image_aspect_ratio: pad (LLaVA-1.5 finetune) or square (anything else; the pretrain default).</summary>
    public ImageAspectRatio? ImageAspectRatio { get; init; }
    /// <summary>--group_by_modality_length: LLaVA's LengthGroupedSampler over modality lengths; else a seeded random shuffle.</summary>
    public bool GroupByModalityLength { get; init; }
    /// <summary>--seed (HF default 42): data order (per epoch) and LoRA initialisation.</summary>
    public int Seed { get; init; } = 42;
    /// <summary>--save_steps: save checkpoint-N every this many optimizer steps (HF default 500; 0 = only at the end/cancel).</summary>
    public int SaveSteps { get; init; } = 500;
    /// <summary>--save_total_limit: keep at most this many checkpoint-* directories (oldest deleted; null = keep all).</summary>
    public int? SaveTotalLimit { get; init; }
    /// <summary>--lora_r (LLaVA default 64; its scripts use 128).</summary>
    public int LoraR { get; init; } = 64;
    /// <summary>--lora_alpha (LLaVA default 16; its scripts use 256).</summary>
    public float LoraAlpha { get; init; } = 16;
    /// <summary>--lora_dropout: PEFT's dropout on the LoRA branch input, training only, masks seeded by (--seed, step, example)
    /// (LLaVA's default is 0.05; ours 0, which keeps runs comparable with the dropout-free reference fixtures).</summary>
    public float LoraDropout { get; init; }
    /// <summary>--bits (QLoRA, lora only): quantize the frozen LLaMA layer linears at load, 8 → Q8_0, 4 → Q4_K (Q4_0 when a row is
    /// not a multiple of 256), as --load-8bit / --load-4bit; null = keep them as stored. LoRA adapters stay f32.</summary>
    public int? Bits { get; init; }
    /// <summary>--freeze_backbone: train no LLM weight (finetune then trains only the projector, like pretrain).</summary>
    public bool FreezeBackbone { get; init; }
    /// <summary>--gradient_checkpointing: recompute each layer's activations in the backward (less memory, same numbers).</summary>
    public bool GradientCheckpointing { get; init; }
    /// <summary>--logging_steps: how often (optimizer steps) the progress callback receives a line (metrics.jsonl gets every step).</summary>
    public int LoggingSteps { get; init; } = 1;
    /// <summary>--resume_from_checkpoint: a checkpoint directory; default: the latest checkpoint-* in the output dir, if any (as LLaVA's train()).</summary>
    public string? ResumeFromCheckpoint { get; init; }
    /// <summary>Do not resume from checkpoint-* in the output dir even if present.</summary>
    public bool NoResume { get; init; }
    /// <summary>Re-initialise the projector as torch.nn.Linear does (seeded) before training: LLaVA's stage 1 starts from a fresh projector.</summary>
    public bool ReinitProjector { get; init; }
    /// <summary>Decode every image when the data file is loaded (finds corrupt images up front).</summary>
    public bool CheckImages { get; init; }
    /// <summary>--dataloader_drop_last (default false).</summary>
    public bool DataloaderDropLast { get; init; }
    /// <summary>--save-format: layout of finetune's final full checkpoint: original (LLaVA's, the default) or HuggingFace (llava-hf,
    /// the CLIP tower included; see <see cref="ModelExport.SaveHuggingFace"/>). Intermediate checkpoint-N directories are unaffected.</summary>
    public CheckpointSaveFormat SaveFormat { get; init; } = CheckpointSaveFormat.Original;
    /// <summary>--save-dtype: tensor dtype of a llava-hf final checkpoint (BF16, F16 or F32; default BF16 as llava-hf ships).</summary>
    public Llava.Tensors.DType SaveDType { get; init; } = Llava.Tensors.DType.BF16;

    /// <summary>Global batch per optimizer step.</summary>
    public int GlobalBatchSize => PerDeviceTrainBatchSize * GradientAccumulationSteps;

    /// <summary>Checks the values; throws <see cref="ArgumentException"/> naming the flag.</summary>
    public void Validate()
    {
        static void Need(bool ok, string message) { if (!ok) throw new ArgumentException(message); }
        Need(PerDeviceTrainBatchSize >= 1, "--per-device-train-batch-size must be at least 1");
        Need(GradientAccumulationSteps >= 1, "--gradient-accumulation-steps must be at least 1");
        Need(LearningRate >= 0 && double.IsFinite(LearningRate), "--learning-rate must be a finite number ≥ 0");
        Need(MmProjectorLr is null || (MmProjectorLr >= 0 && double.IsFinite(MmProjectorLr.Value)), "--mm-projector-lr must be a finite number ≥ 0");
        Need(MaxSteps > 0 || NumTrainEpochs > 0, "give --num-train-epochs > 0 or --max-steps > 0");
        Need(WarmupRatio is >= 0 and <= 1, "--warmup-ratio must be in [0, 1]");
        Need(LrSchedulerType is "cosine" or "constant", "--lr-scheduler-type must be cosine or constant");
        Need(ModelMaxLength >= 2, "--model-max-length must be at least 2");
        Need(SaveSteps >= 0, "--save-steps must be ≥ 0");
        Need(SaveTotalLimit is null or >= 1, "--save-total-limit must be at least 1");
        Need(LoggingSteps >= 1, "--logging-steps must be at least 1");
        Need(Mode != TrainingMode.Lora || (LoraR >= 1 && LoraAlpha > 0), "--lora-r must be ≥ 1 and --lora-alpha > 0");
        Need(LoraDropout is >= 0 and < 1, "--lora-dropout must be in [0, 1)");
        Need(Bits is null or 4 or 8, "--bits must be 4 or 8");
        Need(Bits is null || Mode == TrainingMode.Lora, "--bits (QLoRA) quantizes the frozen base of a lora run; finetune trains the LLM in f32");
        Need(SaveFormat == CheckpointSaveFormat.Original || Mode == TrainingMode.Finetune,
            "--save-format hf applies to finetune's full checkpoint (pretrain saves the projector, lora an adapter: merge it with `llava merge-lora --save-format hf`)");
        Need(SaveDType is Llava.Tensors.DType.BF16 or Llava.Tensors.DType.F16 or Llava.Tensors.DType.F32, "--save-dtype must be bf16, f16 or f32");
        Need(!string.IsNullOrEmpty(ModelPath), "--model is required");
        Need(!string.IsNullOrEmpty(DataPath), "--data is required");
        Need(!string.IsNullOrEmpty(OutputDir), "--output-dir is required");
    }
}
