using LLama;
using LLama.Common;
using LLama.Native;

namespace Llava.Tests.Gguf;

/// <summary>Runs an exported GGUF text model in llama.cpp (through LLamaSharp, CPU) and returns its logits.</summary>
public static class LlamaCppOracle
{
    static readonly object Gate = new();

    /// <summary>Decodes <paramref name="ids"/> as one prompt and returns the logits at the last position, and the model's vocab size.</summary>
    public static (float[] Logits, int VocabCount) LastLogits(string ggufPath, IReadOnlyList<int> ids)
    {
        lock (Gate)   // one native model at a time keeps memory and thread use predictable on a 2-core machine
        {
            NativeLogConfig.llama_log_set((level, message) => { });   // llama.cpp's load chatter is not test output
            var p = new ModelParams(ggufPath)
            {
                ContextSize = 256,
                BatchSize = 256,
                UBatchSize = 256,
                GpuLayerCount = 0,
                Threads = 2,
                BatchThreads = 2,
                // llama.cpp's default f16 KV cache alone costs ~1e-3 relative error; keep the cache exact.
                TypeK = GGMLType.GGML_TYPE_F32,
                TypeV = GGMLType.GGML_TYPE_F32,
            };
            using var weights = LLamaWeights.LoadFromFile(p);
            using var context = weights.CreateContext(p);
            var batch = new LLamaBatch();
            for (int i = 0; i < ids.Count; i++) batch.Add((LLamaToken)ids[i], i, LLamaSeqId.Zero, i == ids.Count - 1);
            var result = context.Decode(batch);
            if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {result}");
            var logits = context.NativeHandle.GetLogitsIth(batch.TokenCount - 1).ToArray();
            return (logits, weights.Vocab.Count);
        }
    }
}
