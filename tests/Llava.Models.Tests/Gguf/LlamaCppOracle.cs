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
                // llama.cpp's defaults (f16 KV cache, flash attention "auto" = on for CPU, which computes attention in
                // f16) cost ~1.2e-3 relative error; keep the cache and attention exact.
                TypeK = GGMLType.GGML_TYPE_F32,
                TypeV = GGMLType.GGML_TYPE_F32,
                FlashAttention = false,
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

    static ModelParams Params(string ggufPath) => new(ggufPath)
    {
        ContextSize = 256,
        BatchSize = 256,
        UBatchSize = 256,
        GpuLayerCount = 0,
        Threads = 2,
        BatchThreads = 2,
        TypeK = GGMLType.GGML_TYPE_F32,
        TypeV = GGMLType.GGML_TYPE_F32,
        FlashAttention = false,
    };

    static int ArgMax(float[] x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    /// <summary>llama.cpp's greedy continuation of <paramref name="prompt"/>: the tokens and the logits each was chosen from.</summary>
    public static (int[] Tokens, float[][] Logits) Greedy(string ggufPath, IReadOnlyList<int> prompt, int steps)
    {
        lock (Gate)
        {
            NativeLogConfig.llama_log_set((level, message) => { });
            var p = Params(ggufPath);
            using var weights = LLamaWeights.LoadFromFile(p);
            using var context = weights.CreateContext(p);
            var batch = new LLamaBatch();
            for (int i = 0; i < prompt.Count; i++) batch.Add((LLamaToken)prompt[i], i, LLamaSeqId.Zero, i == prompt.Count - 1);
            var tokens = new int[steps];
            var logits = new float[steps][];
            for (int s = 0; s < steps; s++)
            {
                if (context.Decode(batch) is var r && r != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {r}");
                logits[s] = context.NativeHandle.GetLogitsIth(batch.TokenCount - 1).ToArray();
                tokens[s] = ArgMax(logits[s]);
                batch.Clear();
                batch.Add((LLamaToken)tokens[s], prompt.Count + s, LLamaSeqId.Zero, true);
            }
            return (tokens, logits);
        }
    }

    /// <summary>The logits llama.cpp computes for each token of <paramref name="continuation"/> after <paramref name="prompt"/> (teacher forcing).</summary>
    public static float[][] TeacherForced(string ggufPath, IReadOnlyList<int> prompt, IReadOnlyList<int> continuation)
    {
        lock (Gate)
        {
            NativeLogConfig.llama_log_set((level, message) => { });
            var p = Params(ggufPath);
            using var weights = LLamaWeights.LoadFromFile(p);
            using var context = weights.CreateContext(p);
            var batch = new LLamaBatch();
            var all = prompt.Concat(continuation.Take(continuation.Count - 1)).ToArray();
            for (int i = 0; i < all.Length; i++) batch.Add((LLamaToken)all[i], i, LLamaSeqId.Zero, i >= prompt.Count - 1);
            if (context.Decode(batch) is var r && r != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {r}");
            return Enumerable.Range(0, continuation.Count).Select(s => context.NativeHandle.GetLogitsIth(prompt.Count - 1 + s).ToArray()).ToArray();
        }
    }

    /// <summary>Runs llama.cpp's own quantizer (llama-quantize, no importance matrix) on a GGUF file; false when llama.cpp refuses.</summary>
    public static bool Quantize(string input, string output, LLamaFtype ftype, bool pure)
    {
        lock (Gate)
        {
            NativeApi.llama_empty_call();   // loads the native library through LLamaSharp's resolver
            NativeLogConfig.llama_log_set((level, message) => { });
            var q = LLamaModelQuantizeParams.Default();
            q.ftype = ftype;
            q.nthread = 2;
            q.pure = pure;
            return NativeApi.llama_model_quantize(input, output, ref q) == 0;
        }
    }
}
