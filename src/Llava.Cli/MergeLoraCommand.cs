using System.CommandLine;
using Llava.Training.Trainer;
using Spectre.Console;

namespace Llava.Cli;

/// <summary>`llava merge-lora`: LLaVA's scripts/merge_lora_weights.py: base + (alpha/r)·B·A → a full original-layout checkpoint.</summary>
internal static class MergeLoraCommand
{
    public static Command Create()
    {
        var path = new Option<string>("--model-path") { Description = "LoRA output directory (adapter_config.json, adapter_model.safetensors, non_lora_trainables.safetensors).", Required = true };
        var baseModel = new Option<string>("--model-base") { Description = "The original-layout checkpoint the adapter was trained on.", Required = true };
        var save = new Option<string>("--save-model-path") { Description = "Directory for the merged checkpoint.", Required = true };
        var keep = new Option<bool>("--keep-base-dtype") { Description = "Write merged matrices in the base tensors' dtype (bf16/f16) instead of f32." };
        var cmd = new Command("merge-lora", "Merge a LoRA adapter into its base model: a full checkpoint loadable without the adapter.");
        foreach (var o in new Option[] { path, baseModel, save, keep }) cmd.Options.Add(o);
        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Cli.Guard(() =>
        {
            string adapter = r.GetValue(path)!, b = r.GetValue(baseModel)!, outDir = r.GetValue(save)!;
            if (!Directory.Exists(adapter)) throw new CliException($"--model-path {adapter}: directory not found");
            if (!Directory.Exists(b)) throw new CliException($"--model-base {b}: directory not found");
            int n = ModelExport.MergeLora(adapter, b, outDir, r.GetValue(keep));
            ModelLoading.Err.MarkupLine($"[green]merged[/] {n} LoRA matrices into {Markup.Escape(outDir)}");
            return 0;
        })));
        return cmd;
    }
}
