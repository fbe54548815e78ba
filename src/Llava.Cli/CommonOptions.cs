using System.CommandLine;
using Llava.Models.Llava;

namespace Llava.Cli;

/// <summary>Options shared by the commands that load a model.</summary>
internal sealed class CommonOptions
{
    public readonly Option<string?> Model = new("--model", "-m") { Description = "Model directory (llava-hf or original LLaVA layout) or a GGUF text model (with --mmproj). Default: the bundled model." };
    public readonly Option<string?> ModelBase = new("--model-base") { Description = "Base language model for a projector-only checkpoint (mm_projector.bin), as LLaVA's --model-base." };
    public readonly Option<string?> VisionTower = new("--vision-tower") { Description = "CLIP checkpoint directory for an original-layout model (default: mm_vision_tower resolved as a local path)." };
    public readonly Option<string?> ConvMode = new("--conv-mode") { Description = "Conversation template (vicuna_v1, llava_v1, llava_v0, llava_llama_2, mistral_instruct, chatml_direct, mpt, plain, ...). Default: chosen from the model name." };
    public readonly Option<string?> ImageAspectRatio = new("--image-aspect-ratio") { Description = "pad (LLaVA-1.5: pad to square with the mean colour) or original (resize + center crop). Default: the checkpoint's setting." };
    public readonly Option<int?> Threads = new("--threads", "-t") { Description = "Worker threads (default: all cores)." };
    public readonly Option<string?> Mmproj = new("--mmproj") { Description = "llama.cpp's vision file (mmproj-*.gguf) when --model is a GGUF text model." };
    public readonly Option<bool> Load8Bit = new("--load-8bit") { Description = "Quantize the weights to 8 bits (Q8_0) while loading." };
    public readonly Option<bool> Load4Bit = new("--load-4bit") { Description = "Quantize the weights to 4 bits (Q4_K, or Q4_0 for rows not a multiple of 256) while loading." };
    public readonly Option<int?> CtxSize = new("--ctx-size") { Description = "KV cache positions (default: the model's context length)." };
    public readonly Option<string?> KvCache = new("--kv-cache") { Description = "KV cache element type, f16 or f32 (llama.cpp's --cache-type-k/v). f16 halves its memory. Default: f16 for GGUF and --load-8bit/--load-4bit models, f32 for float checkpoints (and f32 GGUFs)." };

    public void AddTo(Command c, bool conversation = true)
    {
        c.Options.Add(Model);
        c.Options.Add(ModelBase);
        c.Options.Add(VisionTower);
        c.Options.Add(Mmproj);
        c.Options.Add(Load8Bit);
        c.Options.Add(Load4Bit);
        if (conversation)
        {
            c.Options.Add(ConvMode);
            c.Options.Add(ImageAspectRatio);
        }
        c.Options.Add(Threads);
    }

    public ImageAspectMode? Aspect(ParseResult r) => r.GetValue(ImageAspectRatio) switch
    {
        null => null,
        "pad" => ImageAspectMode.Pad,
        "original" or "square" or "crop" => ImageAspectMode.Original,
        var other => throw new CliException($"--image-aspect-ratio must be 'pad' or 'original', not '{other}'"),
    };

    public void ApplyThreads(ParseResult r)
    {
        if (r.GetValue(Threads) is int n)
        {
            if (n < 1) throw new CliException("--threads must be at least 1");
            Llava.Tensors.Workers.SetThreadCount(n);
        }
    }

    public Llava.Models.Llava.LlavaLoadOptions LoadOptions(ParseResult r)
    {
        bool b8 = r.GetValue(Load8Bit), b4 = r.GetValue(Load4Bit);
        if (b8 && b4) throw new CliException("choose one of --load-8bit and --load-4bit");
        return new Llava.Models.Llava.LlavaLoadOptions
        {
            ModelBase = r.GetValue(ModelBase),
            VisionTower = r.GetValue(VisionTower),
            Mmproj = r.GetValue(Mmproj),
            LoadBits = b8 ? 8 : b4 ? 4 : null,
        };
    }

    /// <summary>--kv-cache, or null for the model's default.</summary>
    public Llava.Models.Llama.KvCacheType? KvCacheType(ParseResult r) => r.GetValue(KvCache) switch
    {
        null => null,
        var s => Llava.Models.Llama.KvCacheTypes.TryParse(s) ?? throw new CliException($"--kv-cache must be 'f16' or 'f32', not '{s}'"),
    };

    public string ResolveModel(ParseResult r) => r.GetValue(Model) ?? DefaultModel.Find()
        ?? throw new CliException("no --model given and no bundled model found (expected models/llava-micro or tests/fixtures/llava-tiny/hf in the repository)");
}

/// <summary>A user error: printed as one line, exit code 1, no stack trace.</summary>
internal sealed class CliException(string message) : Exception(message);
