using System.CommandLine;
using Llava.Training.Trainer;
using Spectre.Console;

namespace Llava.Cli;

/// <summary>`llava merge-lora`: LLaVA's scripts/merge_lora_weights.py: base + (alpha/r)·B·A → a full checkpoint (original layout, or llava-hf with --save-format hf).</summary>
internal static class MergeLoraCommand
{
    public static Command Create()
    {
        var path = new Option<string>("--model-path") { Description = "LoRA output directory (adapter_config.json, adapter_model.safetensors, non_lora_trainables.safetensors).", Required = true };
        var baseModel = new Option<string>("--model-base") { Description = "The original-layout checkpoint the adapter was trained on.", Required = true };
        var save = new Option<string>("--save-model-path") { Description = "Directory for the merged checkpoint.", Required = true };
        var keep = new Option<bool>("--keep-base-dtype") { Description = "Original layout: write merged matrices in the base tensors' dtype (bf16/f16) instead of f32." };
        var format = new Option<string>("--save-format") { Description = "Layout of the merged checkpoint: original (LLaVA's, default) or hf (llava-hf LlavaForConditionalGeneration, CLIP tower included).", DefaultValueFactory = _ => "original" };
        format.AcceptOnlyFromAmong("original", "hf");
        var dtype = new Option<string>("--save-dtype") { Description = "hf layout: dtype of every tensor, bf16 (default), f16 or f32.", DefaultValueFactory = _ => "bf16" };
        dtype.AcceptOnlyFromAmong("bf16", "f16", "f32");
        var tower = new Option<string?>("--vision-tower") { Description = "hf layout: the CLIP checkpoint directory to include (default: the config's mm_vision_tower as a local path)." };
        var cmd = new Command("merge-lora", "Merge a LoRA adapter into its base model: a full checkpoint loadable without the adapter.");
        foreach (var o in new Option[] { path, baseModel, save, keep, format, dtype, tower }) cmd.Options.Add(o);
        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Cli.Guard(() =>
        {
            string adapter = r.GetValue(path)!, b = r.GetValue(baseModel)!, outDir = r.GetValue(save)!;
            if (!Directory.Exists(adapter)) throw new CliException($"--model-path {adapter}: directory not found");
            if (!Directory.Exists(b)) throw new CliException($"--model-base {b}: directory not found");
            bool hf = r.GetValue(format) == "hf";
            if (hf && r.GetValue(keep)) throw new CliException("--keep-base-dtype applies to the original layout; use --save-dtype with --save-format hf");
            int n;
            try
            {
                n = ModelExport.MergeLora(adapter, b, outDir, r.GetValue(keep), hf ? CheckpointSaveFormat.HuggingFace : CheckpointSaveFormat.Original,
                    ModelExport.ParseSaveDType(r.GetValue(dtype) ?? "bf16"), r.GetValue(tower));
            }
            catch (NotSupportedException e) { throw new CliException(e.Message); }
            ModelLoading.Err.MarkupLine($"[green]merged[/] {n} LoRA matrices into {Markup.Escape(outDir)}{(hf ? " (llava-hf layout)" : "")}");
            return 0;
        })));
        return cmd;
    }
}
