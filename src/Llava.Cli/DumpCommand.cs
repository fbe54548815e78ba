using System.CommandLine;
using Llava.Formats.Safetensors;
using Llava.Generation;
using Llava.Models.Llava;

namespace Llava.Cli;

/// <summary>
/// `llava dump`: the parity contract. Writes the tensors the reference fixtures hold, so anyone can compare this
/// engine with transformers or LLaVA's code: pixel_values, vision_selected_features, image_features, input_ids
/// (placeholder as the checkpoint spells it), logits_last8 and 16 greedy generated_ids (not stopping at EOS).
/// </summary>
internal static class DumpCommand
{
    public const int LogitRows = 8;
    public const int GeneratedTokens = 16;

    public static Command Create()
    {
        var common = new CommonOptions();
        var image = new Option<string?>("--image", "--image-file", "-i") { Description = "Image file." };
        var prompt = new Option<string?>("--prompt", "-p") { Description = "The user's question; the full prompt is built with the conversation template." };
        var raw = new Option<string?>("--raw-prompt") { Description = "A fully formatted prompt with literal <image> markers, tokenized as LLaVA's model worker does (multi-turn allowed)." };
        var output = new Option<string>("--out", "-o") { Description = "Output .safetensors file.", Required = true };
        var cmd = new Command("dump", "Write pixel values, image features, input ids, the last 8 logits and 16 greedy tokens to a safetensors file (parity checking).");
        common.AddTo(cmd);
        foreach (var o in new Option[] { image, prompt, raw, output }) cmd.Options.Add(o);

        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Cli.Guard(() =>
        {
            common.ApplyThreads(r);
            string? question = r.GetValue(prompt), rawPrompt = r.GetValue(raw);
            if ((question is null) == (rawPrompt is null)) throw new CliException("give exactly one of --prompt or --raw-prompt");
            var aspect = common.Aspect(r);
            using var model = ModelLoading.Load(common.ResolveModel(r),
                common.LoadOptions(r), quiet: true);
            var session = new LlavaSession(model);
            var entries = new List<SafetensorsWriter.Entry>();
            var images = new List<ImageFeatures>();
            string? imagePath = r.GetValue(image);
            if (imagePath is not null)
            {
                var pixels = model.PreprocessImage(ImageInput.Load(imagePath), aspect);
                var selected = model.SelectVisionFeatures(pixels);
                var features = model.Projector.Forward(selected, model.Config.NumImageTokens);
                int s = model.Config.Vision.ImageSize, n = model.Config.NumImageTokens;
                entries.Add(SafetensorsWriter.F32("pixel_values", [3, s, s], pixels));
                entries.Add(SafetensorsWriter.F32("vision_selected_features", [n, model.Config.Vision.HiddenSize], selected));
                entries.Add(SafetensorsWriter.F32("image_features", [n, model.Config.Text.HiddenSize], features));
                images.Add(session.AddImageFeatures(features));
            }

            string fullPrompt;
            if (rawPrompt is not null) fullPrompt = rawPrompt;
            else
            {
                fullPrompt = Templates.Choose(model, r.GetValue(common.ConvMode), warn: false).SingleTurn(question!, imagePath is not null);
            }
            var ids = session.Tokenize(fullPrompt);
            int markers = ids.Count(i => i == model.Config.ImageTokenIndex);
            if (markers > 0 && images.Count == 0) throw new CliException($"the prompt has {markers} <image> marker(s) but no --image was given");
            if (markers > images.Count) throw new CliException($"the prompt has {markers} <image> markers but one image was given");
            if (markers == 0) images.Clear();

            var logits = session.Prefill(ids, images, LogitRows);
            int rows = logits.Length / model.Language.VocabSize;
            var generated = session.Generate(new GenerationOptions { Temperature = 0, MaxNewTokens = GeneratedTokens, StopAtEos = false }, ct)
                .Where(t => t.Id >= 0).Select(t => (long)t.Id).ToArray();

            entries.Add(SafetensorsWriter.I64("input_ids", [ids.Length], ids.Select(i => (long)i).ToArray()));
            entries.Add(SafetensorsWriter.F32("logits_last8", [rows, model.Language.VocabSize], logits));
            entries.Add(SafetensorsWriter.I64("generated_ids", [generated.Length], generated));
            string outPath = r.GetValue(output)!;
            SafetensorsWriter.Write(outPath, entries, new Dictionary<string, string>
            {
                ["prompt"] = fullPrompt,
                ["model"] = model.Config.ModelName,
                ["layout"] = model.Config.Layout.ToString(),
            });
            Spectre.Console.AnsiConsoleExtensions.MarkupLine(ModelLoading.Err, $"[grey]wrote {Spectre.Console.Markup.Escape(outPath)}: {string.Join(", ", entries.Select(e => e.Name))}[/]");
            return 0;
        })));
        return cmd;
    }
}
