using System.Text.Json;

namespace Llava.Tests;

/// <summary>`llava chat`, `llava info` and the errors a user meets, run as processes.</summary>
public sealed class CommandTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("llava-cli-").FullName;
    public void Dispose() => Directory.Delete(dir, true);

    [Fact]
    public void ChatOneShotJson_ReportsTextAndTokenCounts()
    {
        var r = LlavaProcess.Run("chat", "--model", Fixtures.TinyPath("hf"), "--image", Fixtures.TinyPath("images", "synthetic_500x300.png"),
            "--prompt", "What is shown in this image?", "--json", "--temperature", "0", "--max-new-tokens", "5", "--conv-mode", "llava_v1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.Equal(5, root.GetProperty("completion_tokens").GetInt32());
        // The reference prompt: 48 text tokens + 576 image features.
        Assert.Equal(624, root.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal("length", root.GetProperty("finish_reason").GetString());
        Assert.Equal("llava_v1", root.GetProperty("conv_mode").GetString());
        // Greedy with the reference prompt gives the reference's first greedy tokens.
        var expected = ReferenceCase.Get("synthetic_500x300__default").GreedyIds[..5];
        var tokenizer = Llava.Text.LlamaTokenizer.FromDirectory(Fixtures.TinyPath("hf"));
        Assert.Equal(tokenizer.Decode(expected).Trim(), root.GetProperty("text").GetString());
    }

    [Fact]
    public void InteractiveChat_TwoTurns_ThenEmptyLineExits()
    {
        var r = LlavaProcess.RunWithInput("Describe it.\nAnd the colours?\n\n", "chat", "--model", Fixtures.TinyPath("hf"),
            "--image", Fixtures.TinyPath("images", "tiny_37x61.png"), "--max-new-tokens", "4", "--temperature", "0");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(2, r.Stdout.Split("ASSISTANT:").Length - 1);
        Assert.Contains("exit...", r.Stdout);
    }

    [Fact]
    public void Info_DescribesBothLayouts()
    {
        var hf = LlavaProcess.Run("info", Fixtures.TinyPath("hf"));
        Assert.True(hf.ExitCode == 0, hf.Stderr);
        Assert.Contains("llava-hf", hf.Stdout);
        Assert.Contains("mlp2x_gelu", hf.Stdout);
        var orig = LlavaProcess.Run("info", Fixtures.TinyPath("original", "llava-v1.5-tiny"));
        Assert.True(orig.ExitCode == 0, orig.Stderr);
        Assert.Contains("original LLaVA", orig.Stdout);
        Assert.Contains("clip-vit-tiny-patch14-336", orig.Stdout);
        var file = LlavaProcess.Run("info", Fixtures.TinyPath("original-bin", "mm_projector.bin"));
        Assert.True(file.ExitCode == 0, file.Stderr);
        Assert.Contains("model.mm_projector.0.weight", file.Stdout);
    }

    [Fact]
    public void HugeImageHeader_IsRefusedWithOneLine()
    {
        var png = Path.Combine(dir, "huge.png");
        File.WriteAllBytes(png, PngHeader(100000, 100000));
        var r = LlavaProcess.Run("chat", "--model", Fixtures.TinyPath("hf"), "--image", png, "--prompt", "hi");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("100000", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }

    [Fact]
    public void MaliciousPickle_IsRefusedWithOneLine()
    {
        var model = Path.Combine(dir, "evil");
        Directory.CreateDirectory(model);
        foreach (var f in new[] { "config.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json" })
            File.Copy(Fixtures.TinyPath("original-bin", "llava-v1.5-tiny", f), Path.Combine(model, f));
        File.Copy(Fixtures.TinyPath("original-bin", "hostile", "os_system.bin"), Path.Combine(model, "pytorch_model.bin"));
        var r = LlavaProcess.Run("chat", "--model", model, "--vision-tower", Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336"), "--prompt", "hi");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("os.system", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }

    [Fact]
    public void MissingVisionTower_SaysWhatToPass()
    {
        var r = LlavaProcess.Run("chat", "--model", Fixtures.TinyPath("original-bin", "llava-v1.5-tiny"), "--prompt", "hi");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--vision-tower", r.Stderr);
    }

    [Fact]
    public void DataShapes_ThenEvalShapes_ReportsEveryQuestion()
    {
        var data = Path.Combine(dir, "shapes");
        var made = LlavaProcess.Run("data", "shapes", "--output-dir", data, "--train", "20", "--held-out", "3", "--eval-questions-per-image", "2", "--seed", "7");
        Assert.True(made.ExitCode == 0, made.Stderr);
        Assert.Contains("20 training + 3 held-out images", made.Stdout);
        foreach (var f in new[] { "pretrain.json", "finetune.json", "eval.json", "words.txt" }) Assert.True(File.Exists(Path.Combine(data, f)), f);
        var eval = LlavaProcess.Run("eval", "shapes", "--model", Fixtures.TinyPath("hf"), "--data", data, "--max-new-tokens", "3");
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        // 3 images × 2 questions, all scored (the random-weight fixture answers gibberish, so accuracy is ~0).
        Assert.Matches(@"all\s+6\s", eval.Stdout);
    }

    [Fact]
    public void ConvModeChatTemplate_UsesTheCheckpointsJinjaTemplate()
    {
        var model = Path.Combine(dir, "hf-with-template");
        Directory.CreateDirectory(model);
        foreach (var f in Directory.GetFiles(Fixtures.TinyPath("hf"))) File.CreateSymbolicLink(Path.Combine(model, Path.GetFileName(f)), f);
        // llava-hf/llava-1.5-7b-hf's chat template, as transformers ships it.
        const string template = "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Fixtures.TinyPath("hf", "tokenizer_config.json")))!.AsObject();
        config["chat_template"] = template;
        File.Delete(Path.Combine(model, "tokenizer_config.json"));
        File.WriteAllText(Path.Combine(model, "tokenizer_config.json"), config.ToJsonString());

        string image = Fixtures.TinyPath("images", "tiny_37x61.png");
        var a = LlavaProcess.Run("dump", "--model", model, "--image", image, "--prompt", "What is shown?", "--conv-mode", "chat_template", "--out", Path.Combine(dir, "a.safetensors"));
        Assert.True(a.ExitCode == 0, a.Stderr);
        var b = LlavaProcess.Run("dump", "--model", model, "--image", image, "--raw-prompt", "USER: <image>\nWhat is shown? ASSISTANT:", "--out", Path.Combine(dir, "b.safetensors"));
        Assert.True(b.ExitCode == 0, b.Stderr);
        using var fa = Llava.Formats.Safetensors.SafetensorsFile.Open(Path.Combine(dir, "a.safetensors"));
        using var fb = Llava.Formats.Safetensors.SafetensorsFile.Open(Path.Combine(dir, "b.safetensors"));
        Assert.Equal(Llava.Formats.TensorFileExtensions.Get(fb, "input_ids").ToInt64(), Llava.Formats.TensorFileExtensions.Get(fa, "input_ids").ToInt64());
        var none = LlavaProcess.Run("chat", "--model", Fixtures.TinyPath("hf"), "--prompt", "hi", "--conv-mode", "chat_template");
        Assert.Equal(1, none.ExitCode);
        Assert.Contains("no chat template", none.Stderr);
    }

    [Fact]
    public void Help_ListsEveryCommand()
    {
        var r = LlavaProcess.Run("--help");
        Assert.Equal(0, r.ExitCode);
        foreach (var c in new[] { "chat", "dump", "info", "data", "eval" }) Assert.Contains(c, r.Stdout);
    }

    static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        return ~c;
    }

    /// <summary>A PNG signature and IHDR chunk (with a valid CRC) claiming the given size, and nothing else.</summary>
    static byte[] PngHeader(int width, int height)
    {
        var ihdr = new byte[17];
        "IHDR"u8.CopyTo(ihdr);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), width);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(8), height);
        ihdr[12] = 8; ihdr[13] = 2; // 8-bit RGB
        var ms = new MemoryStream();
        ms.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        ms.Write([0, 0, 0, 13]);
        ms.Write(ihdr);
        uint crc = Crc32(ihdr);
        ms.Write([(byte)(crc >> 24), (byte)(crc >> 16), (byte)(crc >> 8), (byte)crc]);
        return ms.ToArray();
    }
}
