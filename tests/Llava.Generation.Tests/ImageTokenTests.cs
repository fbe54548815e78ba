using System.Text.Json.Nodes;
using Llava.Generation;
using Llava.Models.Llava;

namespace Llava.Tests;

/// <summary>Original-layout prompts with &lt;im_start&gt;/&lt;im_end&gt; and &lt;im_patch&gt; added as LLaVA's builder does.</summary>
public sealed class ImageTokenTests
{
    [Fact]
    public void MmUseImStartEnd_WrapsThePlaceholder_WithAddedTokens()
    {
        using var dir = new TempDir();
        var src = Fixtures.TinyPath("original", "llava-v1.5-tiny");
        foreach (var f in Directory.GetFiles(src)) File.CreateSymbolicLink(Path.Combine(dir.Path, Path.GetFileName(f)), f);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(src, "config.json")))!.AsObject();
        config["mm_use_im_start_end"] = true;
        config["mm_use_im_patch_token"] = true;
        File.Delete(Path.Combine(dir.Path, "config.json"));
        File.WriteAllText(Path.Combine(dir.Path, "config.json"), config.ToJsonString());

        using var model = LlavaModel.Load(dir.Path, new LlavaLoadOptions { VisionTower = Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336") });
        Assert.Equal(32000, model.Tokenizer.TokenToId("<im_patch>"));
        Assert.Equal(32001, model.Tokenizer.TokenToId("<im_start>"));
        Assert.Equal(32002, model.Tokenizer.TokenToId("<im_end>"));
        var ids = new LlavaSession(model).Tokenize("USER: <image>\nHi ASSISTANT:");
        int at = Array.IndexOf(ids, -200);
        Assert.True(at > 0);
        Assert.Equal(32001, ids[at - 1]);
        Assert.Equal(32002, ids[at + 1]);
    }
}
