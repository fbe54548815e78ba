namespace Llava.Training.Model;

/// <summary>What trains (LLaVA's flags): the vision tower is always frozen, as in LLaVA.</summary>
public enum TrainingMode
{
    /// <summary>Stage 1, --tune_mm_mlp_adapter: only the projector.</summary>
    Pretrain,
    /// <summary>Stage 2: projector and the whole language model.</summary>
    Finetune,
    /// <summary>Stage 2 with LoRA on q,k,v,o,gate,up,down (base frozen) plus the projector.</summary>
    Lora,
}

/// <summary>LoRA hyper-parameters (LLaVA's --lora_r, --lora_alpha, --lora_dropout).</summary>
public sealed record LoraOptions(int Rank = 128, float Alpha = 256, float Dropout = 0.05f)
{
    public static readonly string[] Targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
}

/// <summary>One training example: ids with −200 image placeholders, labels (−100 = ignore) and the image's pixels.</summary>
public sealed record TrainingExample(int[] InputIds, int[] Labels, float[]? PixelValues);
