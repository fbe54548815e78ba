using System.CommandLine;
using Llava.Formats;
using Llava.Models.Llava;
using Llava.Models.Loading;
using Llava.Tensors;
using Llava.Text;
using Spectre.Console;

namespace Llava.Cli;

/// <summary>`llava info PATH`: what a checkpoint directory or weight file is.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("path") { Description = "A model directory, or a single .safetensors / .bin / .gguf file." };
        var visionTower = new Option<string?>("--vision-tower") { Description = "CLIP checkpoint directory for an original-layout model." };
        var cmd = new Command("info", "Describe a checkpoint: format, architecture, parameter counts, dtypes, vision tower, template.");
        cmd.Arguments.Add(path);
        cmd.Options.Add(visionTower);
        cmd.SetAction((ParseResult r) => Cli.Guard(() =>
        {
            string p = r.GetValue(path)!;
            if (File.Exists(p)) return DescribeFile(p);
            if (!Directory.Exists(p)) throw new CliException($"not found: {p}");
            return DescribeModel(p, r.GetValue(visionTower));
        }));
        return cmd;
    }

    /// <summary>A GGUF file: version, every metadata key (long arrays abbreviated) and tensor types.</summary>
    static int DescribeGguf(string path)
    {
        using var f = Llava.Formats.Gguf.GgufFile.Open(path);
        long bytes = f.Tensors.Sum(t => t.ByteSize), elements = f.Tensors.Sum(t => t.ElementCount);
        Console.WriteLine($"{path}: GGUF v{f.Version}, {f.Metadata.Count} metadata keys, {f.Tensors.Count} tensors, {elements:N0} parameters, {bytes / 1048576.0:F1} MiB of tensor data (alignment {f.Alignment})");
        foreach (var key in f.Metadata.Keys)
        {
            var v = f.Metadata[key];
            string shown = v.Raw is Llava.Formats.Gguf.GgufArray a
                ? $"[{a.ElementType} × {a.Count}]" + (a.Count <= 8 ? " " + string.Join(", ", a.Items.Cast<object>()) : "")
                : v.Raw?.ToString() ?? "";
            if (shown.Length > 120) shown = shown[..117] + "...";
            Console.WriteLine($"  {key} = {shown}");
        }
        foreach (var g in f.Tensors.GroupBy(t => t.Type).OrderBy(g => g.Key))
            Console.WriteLine($"  {g.Key}: {g.Count()} tensors, {g.Sum(t => t.ElementCount):N0} elements, {g.Sum(t => t.ByteSize) / 1048576.0:F1} MiB");
        foreach (var t in f.Tensors.Take(400))
            Console.WriteLine($"  {t.Name}  {t.Type}  [{string.Join(", ", t.Shape)}]");
        if (f.Tensors.Count > 400) Console.WriteLine($"  ... {f.Tensors.Count - 400} more");
        return 0;
    }

    static int DescribeModel(string dir, string? visionTower)
    {
        using var model = LlavaModel.Load(dir, new LlavaLoadOptions { VisionTower = visionTower });
        var c = model.Config;
        var t = new Table().Border(TableBorder.Rounded).AddColumn("property").AddColumn("value");
        var rows = new List<(string, string)>();
        void Row(string k, string v) { t.AddRow(Markup.Escape(k), Markup.Escape(v)); rows.Add((k, v)); }
        Row("model", c.ModelName);
        Row("layout", c.Layout == CheckpointLayout.HuggingFace ? "Hugging Face llava-hf (LlavaForConditionalGeneration)" : "original LLaVA (LlavaLlamaForCausalLM)");
        Row("weights", string.Join("\n", model.Summary.Files));
        Row("parameters", $"{model.Summary.Parameters:N0} in {model.Summary.Tensors} tensors ({model.Summary.Bytes / 1048576.0:F1} MiB)");
        Row("dtypes", string.Join(", ", model.Summary.ParametersByDType.Select(kv => $"{kv.Key}: {kv.Value:N0}")));
        var v = c.Vision;
        Row("vision tower", $"CLIP ViT {v.NumLayers} layers, hidden {v.HiddenSize}, {v.NumHeads} heads, {v.ImageSize}px / patch {v.PatchSize}, {v.HiddenAct}" +
            (c.VisionTowerPath is null ? "" : $"\n{c.VisionTowerPath}"));
        Row("image features", $"hidden_states[{c.VisionFeatureLayer}], {(c.FeatureSelect == FeatureSelect.Patch ? "patch (CLS dropped)" : "cls_patch")}, {c.NumImageTokens} tokens per image");
        Row("projector", $"{c.ProjectorType} ({c.ProjectorAct})");
        var l = c.Text;
        Row("language model", $"LLaMA {l.NumLayers} layers, hidden {l.HiddenSize}, ffn {l.IntermediateSize}, {l.NumHeads} heads / {l.NumKvHeads} kv heads, vocab {l.VocabSize}, rope theta {l.RopeTheta}" +
            (l.RopeScaling is { } s ? $", rope scaling {s.Type} x{s.Factor}" : "") + (l.TieWordEmbeddings ? ", tied lm_head" : ""));
        Row("context", $"{c.ContextLength} tokens");
        Row("image placeholder", $"{c.ImageTokenIndex}" + (c.MmUseImStartEnd ? " wrapped in <im_start>/<im_end>" : ""));
        Row("image aspect", c.ImageAspect == ImageAspectMode.Pad ? "pad (expand2square with the mean colour)" : "original (resize + center crop)");
        Row("tokenizer", $"{model.Tokenizer.VocabSize} tokens, bos {model.Tokenizer.BosId}, eos {model.Tokenizer.EosId}");
        Row("template", $"{Templates.Auto(model)} (auto; LLaVA's CLI would pick {ConversationTemplates.AutoSelectLikeLlavaCli(c.ModelName)})");
        if (Console.IsOutputRedirected)
            foreach (var (key, value) in rows) Console.WriteLine($"{key}: {value.Replace("\n", "\n    ")}");
        else AnsiConsole.Write(t);
        return 0;
    }

    static int DescribeFile(string path)
    {
        if (path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) return DescribeGguf(path);
        using var f = CheckpointFiles.OpenFile(path);
        var byType = new Dictionary<DType, (int count, long elements)>();
        long total = 0;
        foreach (var n in f.Names)
        {
            var t = f.Get(n);
            var (c, e) = byType.GetValueOrDefault(t.DType);
            byType[t.DType] = (c + 1, e + t.ElementCount);
            total += t.ElementCount;
        }
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(path)}[/]: {(path.EndsWith(".safetensors") ? "safetensors" : "PyTorch checkpoint")}, {f.Names.Count} tensors, {total:N0} parameters");
        foreach (var (dt, (c, e)) in byType) AnsiConsole.MarkupLine($"  {dt}: {c} tensors, {e:N0} elements");
        var table = new Table().Border(TableBorder.Simple).AddColumn("tensor").AddColumn("dtype").AddColumn("shape");
        foreach (var n in f.Names.OrderBy(x => x, StringComparer.Ordinal).Take(200))
        {
            var t = f.Get(n);
            if (Console.IsOutputRedirected) Console.WriteLine($"  {n}  {t.DType}  {t.ShapeString}");
            else table.AddRow(Markup.Escape(n), t.DType.ToString(), t.ShapeString);
        }
        if (!Console.IsOutputRedirected) AnsiConsole.Write(table);
        if (f.Names.Count > 200) AnsiConsole.MarkupLine($"  ... {f.Names.Count - 200} more");
        return 0;
    }
}
