using System.Text.Encodings.Web;
using System.Text.Json;
using Llava.Training.Synthetic;

namespace Llava.Training.Recipe;

/// <summary>
/// Text-only conversations for pretraining the micro LLaVA's language model on the shapes world: the first human turn
/// carries the scene's caption where stage 2 has the image ("{caption}\n{question}"), followed by 2–4 question/answer
/// rounds of distinct types. The LM learns the words, the answer templates and to read attributes from its context
/// before it ever sees an image. LLaVA's data format, no "image" key, so the v1 template and masking apply unchanged.
/// </summary>
public static class RecipeTextData
{
    /// <summary>Writes <paramref name="count"/> records; scene seeds come from their own stream (disjoint from the image datasets' by construction of the mix).</summary>
    public static void Write(string path, int count, int seed)
    {
        using var stream = File.Create(path);
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        var world = new ShapesWorldOptions { CanvasSize = 112 };
        w.WriteStartArray();
        for (int i = 0; i < count; i++)
        {
            ulong s = ShapesRng.Mix((ulong)(uint)seed, 0x7E47, (ulong)i);
            var scene = ShapesWorld.Layout((int)(s & 0x7FFFFFFF), world);
            var rng = new ShapesRng(ShapesRng.Mix(s, 0xC0F));
            var rounds = ShapesLanguage.Conversation(scene, rng);
            w.WriteStartObject();
            w.WriteString("id", $"text-{i:D6}");
            w.WriteStartArray("conversations");
            for (int r = 0; r < rounds.Count; r++)
            {
                ShapesDataset.Turn(w, "human", r == 0 ? ShapesLanguage.Caption(scene) + "\n" + rounds[r].Question : rounds[r].Question);
                ShapesDataset.Turn(w, "gpt", rounds[r].Answer);
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }
}
