using Llava.Generation;
using Llava.Models.Llava;
using Llava.Vision;

namespace Llava.Bench;

/// <summary>End to end on a checkpoint: image encode, prefill of a LLaVA prompt, decode tokens/s, time to first token.</summary>
static class ModelBench
{
    public static void Run(BenchOptions o)
    {
        string dir = o.Model ?? throw new ArgumentException("--model DIR is required");
        using var model = LlavaModel.Load(dir);
        Console.WriteLine($"model: {model.Config.ModelName} ({model.Config.Layout}, {model.Summary.Parameters / 1e6:F1}M parameters, {model.Summary.Bytes / 1048576.0:F0} MiB)");
        var image = o.Image is null ? Synthetic() : ImageDecoder.Decode(o.Image);
        var pixels = model.PreprocessImage(image);

        double encode = Stats.Median(o.Runs, () => model.EncodeImage(pixels));
        var session = new LlavaSession(model, Math.Min(model.Config.ContextLength, 2048));
        var features = session.AddImageFeatures(model.EncodeImage(pixels));
        var ids = session.Tokenize("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions. USER: <image>\nDescribe this image in detail, please, mentioning every object you can see. ASSISTANT:");
        int promptPositions = ids.Length - 1 + features.Rows;
        double prefill = Stats.Median(o.Runs, () => { session.Reset(); session.Prefill(ids, [features]); });
        const int decodeTokens = 64;
        double decode = Stats.Median(o.Runs, () =>
        {
            session.Reset();
            session.Prefill(ids, [features]);
            for (int i = 0; i < decodeTokens; i++) session.Step(100 + i);
        });
        // decode includes a prefill: subtract its median.
        double decodeOnly = Math.Max(decode - prefill, 1e-9);
        Console.WriteLine($"image encode      {encode,8:F3} s");
        Console.WriteLine($"prefill           {promptPositions / prefill,8:F1} tokens/s ({promptPositions} positions in {prefill:F3} s)");
        Console.WriteLine($"decode            {decodeTokens / decodeOnly,8:F1} tokens/s");
        Console.WriteLine($"time to 1st token {encode + prefill,8:F3} s (image + prefill)");
        Console.WriteLine($"peak working set  {System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0,8:F0} MiB");
    }

    static RgbImage Synthetic()
    {
        var img = new RgbImage(640, 480);
        for (int y = 0; y < 480; y++)
            for (int x = 0; x < 640; x++) img.SetPixel(x, y, (byte)x, (byte)y, (byte)(x ^ y));
        return img;
    }
}
