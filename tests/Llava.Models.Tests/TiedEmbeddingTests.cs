using System.Text.Json.Nodes;
using Llava.Formats;
using Llava.Formats.Safetensors;
using Llava.Models.Llava;

namespace Llava.Tests;

/// <summary>tie_word_embeddings: without an lm_head tensor the output projection is the embedding matrix.</summary>
public sealed class TiedEmbeddingTests
{
    [Fact]
    public void TiedCheckpoint_EqualsUntiedCheckpointWhoseHeadIsTheEmbedding()
    {
        using var tied = new TempDir();
        using var untied = new TempDir();
        var src = Fixtures.TinyPath("original", "llava-v1.5-tiny");
        using (var weights = SafetensorsFile.Open(Path.Combine(src, "model.safetensors")))
        {
            SafetensorsWriter.Entry E(string name, string? asName = null) { var t = weights.Get(name); return new(asName ?? name, t.DType, t.Shape, t.Bytes.ToArray()); }
            var body = weights.Names.Where(n => n != "lm_head.weight").Select(n => E(n)).ToList();
            SafetensorsWriter.Write(Path.Combine(tied.Path, "model.safetensors"), body);
            SafetensorsWriter.Write(Path.Combine(untied.Path, "model.safetensors"), [.. body, E("model.embed_tokens.weight", "lm_head.weight")]);
        }
        foreach (var (dir, tie) in new[] { (tied.Path, true), (untied.Path, false) })
        {
            foreach (var f in new[] { "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json" })
                File.Copy(Path.Combine(src, f), Path.Combine(dir, f));
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(src, "config.json")))!.AsObject();
            config["tie_word_embeddings"] = tie;
            File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        }
        var tower = new LlavaLoadOptions { VisionTower = Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336") };
        using var a = LlavaModel.Load(tied.Path, tower);
        using var b = LlavaModel.Load(untied.Path, tower);
        var ids = ReferenceCase.Get("text_only").InputIdsOriginal!;
        var la = LlavaParityTests.Forward(a, ids, 2);
        var lb = LlavaParityTests.Forward(b, ids, 2);
        Assert.Equal(lb, la);
        // And it differs from the fixture's own (untied) head, so the test can fail.
        using var own = LlavaModel.Load(src);
        Assert.NotEqual(LlavaParityTests.Forward(own, ids, 2), la);
    }
}
