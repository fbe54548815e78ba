using Llava.Models.Llava;

namespace Llava.Tests;

/// <summary>The tiny fixture checkpoint in each layout, loaded once per test class.</summary>
public sealed class TinyModels : IDisposable
{
    readonly Lazy<LlavaModel> hf = new(() => LlavaModel.Load(Fixtures.TinyPath("hf")));
    readonly Lazy<LlavaModel> original = new(() => LlavaModel.Load(Fixtures.TinyPath("original", "llava-v1.5-tiny")));
    readonly Lazy<LlavaModel> originalBin = new(() => LlavaModel.Load(Fixtures.TinyPath("original-bin", "llava-v1.5-tiny"),
        new LlavaLoadOptions { VisionTower = Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336") }));

    public LlavaModel Hf => hf.Value;
    public LlavaModel Original => original.Value;
    public LlavaModel OriginalBin => originalBin.Value;

    public void Dispose()
    {
        if (hf.IsValueCreated) hf.Value.Dispose();
        if (original.IsValueCreated) original.Value.Dispose();
        if (originalBin.IsValueCreated) originalBin.Value.Dispose();
    }
}
