using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Llava.Generation;
using Llava.Models.Llava;
using Llava.Text;
using Spectre.Console;

namespace Llava.Cli;

/// <summary>
/// `llava chat`: interactive multi-turn chat about an image, streamed, in the style of LLaVA's llava.serve.cli;
/// or one answer with --prompt (plain text, or JSON with --json) for scripts.
/// </summary>
internal static class ChatCommand
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var image = new Option<string?>("--image", "--image-file", "-i") { Description = "Image to talk about (file or http(s) URL)." };
        var prompt = new Option<string?>("--prompt", "-p") { Description = "Ask one question, print the answer and exit (for scripts)." };
        var json = new Option<bool>("--json") { Description = "With --prompt: print a JSON object with the text and token counts." };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature; 0 = greedy.", DefaultValueFactory = _ => 0.2f };
        var topP = new Option<float?>("--top-p") { Description = "Nucleus sampling mass (default: off)." };
        var topK = new Option<int>("--top-k") { Description = "Sample among the k most likely tokens (0 = off)." };
        var repetition = new Option<float>("--repetition-penalty") { Description = "Penalty for tokens already in the conversation (1 = off).", DefaultValueFactory = _ => 1f };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Longest answer in tokens.", DefaultValueFactory = _ => 512 };
        var seed = new Option<int?>("--seed") { Description = "Random seed for sampling (default: random)." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Print timings (image encode, prefill, tokens/s) and memory." };

        var cmd = new Command("chat", "Chat about an image with a LLaVA model (interactive, or one-shot with --prompt).");
        common.AddTo(cmd);
        cmd.Options.Add(common.CtxSize);
        cmd.Options.Add(common.KvCache);
        foreach (var o in new Option[] { image, prompt, json, temperature, topP, topK, repetition, maxNew, seed, verbose }) cmd.Options.Add(o);

        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Cli.Guard(() =>
        {
            common.ApplyThreads(r);
            string? oneShot = r.GetValue(prompt);
            bool asJson = r.GetValue(json);
            if (asJson && oneShot is null) throw new CliException("--json needs --prompt");
            var gen = new GenerationOptions
            {
                Temperature = r.GetValue(temperature),
                TopP = r.GetValue(topP),
                TopK = r.GetValue(topK),
                RepetitionPenalty = r.GetValue(repetition),
                MaxNewTokens = r.GetValue(maxNew),
                Seed = r.GetValue(seed),
            };
            if (gen.MaxNewTokens < 1) throw new CliException("--max-new-tokens must be at least 1");
            var aspect = common.Aspect(r);
            var kvCache = common.KvCacheType(r);
            using var model = ModelLoading.Load(common.ResolveModel(r),
                common.LoadOptions(r), quiet: asJson);
            var format = Templates.Choose(model, r.GetValue(common.ConvMode), warn: !asJson);
            using var session = new LlavaSession(model, r.GetValue(common.CtxSize), kvCache);
            if (r.GetValue(verbose) && !asJson)
                ModelLoading.Err.MarkupLine($"[grey]KV cache: {session.CacheType.ToString().ToLowerInvariant()}, {session.ContextSize} positions, {session.CacheBytes / 1048576.0:F1} MiB reserved (resident as positions fill)[/]");
            var chat = new ChatTurns(session, format, gen, aspect);
            if (r.GetValue(image) is string img)
            {
                var sw = Stopwatch.StartNew();
                chat.SetImage(ImageInput.Load(img));
                if (r.GetValue(verbose)) ModelLoading.Err.MarkupLine($"[grey]image encoded in {sw.Elapsed.TotalSeconds:F2}s ({model.Config.NumImageTokens} tokens)[/]");
            }

            if (oneShot is not null)
            {
                var result = chat.Ask(oneShot, asJson ? null : Console.Out, ct);
                if (asJson)
                    Console.WriteLine(JsonSerializer.Serialize(new
                    {
                        text = result.Text,
                        prompt_tokens = result.PromptTokens,
                        completion_tokens = result.CompletionTokens,
                        finish_reason = result.Finish.ToString().ToLowerInvariant(),
                        conv_mode = format.Name,
                        model = model.Config.ModelName,
                    }, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
                else Console.WriteLine();
                if (r.GetValue(verbose)) PrintStats(result, session);
                return result.Finish == FinishReason.ContextFull ? 1 : 0;
            }

            Interactive(chat, format, session, r.GetValue(verbose), ct);
            return 0;
        })));
        return cmd;
    }

    static void Interactive(ChatTurns chat, PromptFormat format, LlavaSession session, bool verbose, CancellationToken ct)
    {
        string[] roles = [format.UserLabel, format.AssistantLabel];
        ModelLoading.Err.MarkupLine($"[grey]conversation template: {format.Name}. Empty line or Ctrl-D exits.[/]");
        while (!ct.IsCancellationRequested)
        {
            Console.Write($"{roles[0]}: ");
            var line = Console.ReadLine();
            if (string.IsNullOrEmpty(line)) { Console.WriteLine("exit..."); break; }
            Console.Write($"{roles[1]}: ");
            TurnResult result;
            try { result = chat.Ask(line, Console.Out, ct); }
            catch (Llava.Models.Llama.ContextOverflowException e)
            {
                Console.WriteLine();
                ModelLoading.Err.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
                break;
            }
            Console.WriteLine();
            if (result.Finish == FinishReason.ContextFull)
            {
                ModelLoading.Err.MarkupLine("[red]error:[/] the context window is full; the answer was cut. Start a new chat.");
                break;
            }
            if (verbose) PrintStats(result, session);
        }
    }

    static void PrintStats(TurnResult r, LlavaSession s)
    {
        double tps = r.CompletionTokens / Math.Max(r.DecodeSeconds, 1e-9);
        double pps = r.PrefillTokens / Math.Max(r.PrefillSeconds, 1e-9);
        ModelLoading.Err.MarkupLine(
            $"[grey]prompt {r.PromptTokens} tokens ({r.PrefillTokens} computed) in {r.PrefillSeconds:F2}s = {pps:F1} tokens/s; " +
            $"answer {r.CompletionTokens} tokens in {r.DecodeSeconds:F2}s = {tps:F1} tokens/s; finish: {r.Finish}; " +
            $"context {s.Position}/{s.ContextSize}; KV cache {s.CacheType.ToString().ToLowerInvariant()} {s.CacheBytes / 1048576.0:F1} MiB; working set {Environment.WorkingSet / 1048576.0:F0} MiB[/]");
    }
}
