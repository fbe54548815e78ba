using System.Runtime.InteropServices;
using LLama.Native;

namespace Llava.Tests.LlamaCpp;

/// <summary>
/// The llama.cpp context settings a run uses. <see cref="Exact"/> is what the oracle tests use (f32 KV cache, no flash
/// attention); <see cref="LlamaCppDefaults"/> is llama.cpp's own <c>llama_context_default_params()</c> (f16 KV cache,
/// flash attention "auto", which the CPU backend turns on).
/// </summary>
public sealed record LlamaCppSettings
{
    public GGMLType TypeK { get; init; } = GGMLType.GGML_TYPE_F32;
    public GGMLType TypeV { get; init; } = GGMLType.GGML_TYPE_F32;
    public LLamaFlashAttentionType FlashAttention { get; init; } = LLamaFlashAttentionType.LLAMA_FLASH_ATTENTION_TYPE_DISABLED;
    public uint Context { get; init; } = 512;
    public uint Batch { get; init; } = 512;
    public uint UBatch { get; init; } = 512;
    public int Threads { get; init; } = 1;   // tiny models; one thread avoids ggml's spinning barriers on a busy machine

    public static LlamaCppSettings Exact { get; } = new();

    /// <summary>The values llama_context_default_params() returns for the KV types and flash attention.</summary>
    public static LlamaCppSettings LlamaCppDefaults
    {
        get
        {
            LlamaCppRunner.EnsureLoaded();
            var d = LLamaContextParams.Default();
            return new LlamaCppSettings { TypeK = d.type_k, TypeV = d.type_v, FlashAttention = d.llama_flash_attn_type };
        }
    }

    public override string ToString() => $"K {Short(TypeK)}, V {Short(TypeV)}, flash attention {FlashAttention.ToString().Replace("LLAMA_FLASH_ATTENTION_TYPE_", "").ToLowerInvariant()}, ubatch {UBatch}";
    static string Short(GGMLType t) => t.ToString().Replace("GGML_TYPE_", "").ToLowerInvariant();
}

/// <summary>
/// Runs a GGUF text model in llama.cpp (LLamaSharp 0.30.0's native CPU build). Contexts are created from
/// <c>llama_context_default_params()</c> with only the fields of <see cref="LlamaCppSettings"/> changed, so nothing
/// depends on how LLamaSharp's ModelParams maps its properties. Optionally records named intermediate tensors of the
/// graph through llama.cpp's eval callback (<c>cb_eval</c>), to localise differences layer by layer.
/// </summary>
public sealed class LlamaCppRunner : IDisposable
{
    static readonly object Gate = new();
    static bool loaded;

    internal static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (loaded) return;
            NativeApi.llama_empty_call();   // loads the native library through LLamaSharp's resolver
            NativeLogConfig.llama_log_set((level, message) => { });
            loaded = true;
        }
    }

    readonly SafeLlamaModelHandle model;
    readonly SafeLLamaContextHandle context;
    readonly EvalCallback? callback;   // kept alive as long as the context
    readonly Func<string, bool>? record;
    public LlamaCppSettings Settings { get; }
    public int VocabCount { get; }
    public int Position { get; private set; }

    /// <summary>Tensors recorded during the last decode (name → f32 values, ggml layout), when a filter was given.</summary>
    public Dictionary<string, float[]> Recorded { get; } = new();

    public LlamaCppRunner(string ggufPath, LlamaCppSettings? settings = null, Func<string, bool>? record = null)
    {
        EnsureLoaded();
        Settings = settings ?? LlamaCppSettings.Exact;
        this.record = record;
        var mp = LLamaModelParams.Default();
        mp.n_gpu_layers = 0;
        model = SafeLlamaModelHandle.LoadFromFile(ggufPath, mp);
        var cp = LLamaContextParams.Default();
        cp.n_ctx = Settings.Context;
        cp.n_batch = Settings.Batch;
        cp.n_ubatch = Settings.UBatch;
        cp.n_seq_max = 1;
        cp.n_threads = Settings.Threads;
        cp.n_threads_batch = Settings.Threads;
        cp.type_k = Settings.TypeK;
        cp.type_v = Settings.TypeV;
        cp.llama_flash_attn_type = Settings.FlashAttention;
        if (record is not null)
        {
            callback = OnEval;
            cp.cb_eval = Marshal.GetFunctionPointerForDelegate(callback);
        }
        context = SafeLLamaContextHandle.Create(model, cp);
        VocabCount = model.Vocab.Count;
    }

    /// <summary>Feeds <paramref name="ids"/> (one batch) and returns the logits of its last position.</summary>
    public float[] Feed(IReadOnlyList<int> ids)
    {
        Recorded.Clear();
        var batch = new LLamaBatch();
        for (int i = 0; i < ids.Count; i++) batch.Add((LLamaToken)ids[i], Position + i, LLamaSeqId.Zero, i == ids.Count - 1);
        var r = context.Decode(batch);
        if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {r}");
        Position += ids.Count;
        return context.GetLogitsIth(batch.TokenCount - 1).ToArray();
    }

    public float[] Step(int id) => Feed([id]);

    /// <summary>Prompt, then greedy decoding: the chosen tokens and the logits each was chosen from.</summary>
    public (int[] Tokens, float[][] Logits) Greedy(IReadOnlyList<int> prompt, int steps)
    {
        var tokens = new int[steps];
        var logits = new float[steps][];
        logits[0] = Feed(prompt);
        for (int s = 0; s < steps; s++)
        {
            if (s > 0) logits[s] = Step(tokens[s - 1]);
            tokens[s] = Stats.ArgMax(logits[s]);
        }
        return (tokens, logits);
    }

    public static float[] LastLogits(string ggufPath, IReadOnlyList<int> ids, LlamaCppSettings? settings = null)
    {
        lock (Gate)
        {
            using var r = new LlamaCppRunner(ggufPath, settings);
            return r.Feed(ids);
        }
    }

    public static (int[] Tokens, float[][] Logits) GreedyRun(string ggufPath, IReadOnlyList<int> prompt, int steps, LlamaCppSettings? settings = null)
    {
        lock (Gate)
        {
            using var r = new LlamaCppRunner(ggufPath, settings);
            return r.Greedy(prompt, steps);
        }
    }

    // ggml_backend_sched_eval_callback: bool (*)(struct ggml_tensor * t, bool ask, void * user_data)
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    [return: MarshalAs(UnmanagedType.U1)]
    delegate bool EvalCallback(IntPtr tensor, [MarshalAs(UnmanagedType.U1)] bool ask, IntPtr userData);

    // struct ggml_tensor (ggml.h): type@0, buffer@8, ne[4]@16, nb[4]@48, op@80, op_params[16]@84, flags@148,
    // src[10]@152, view_src@232, view_offs@240, data@248, name[64]@256.
    const int NeOffset = 16, NbOffset = 48, DataOffset = 248, NameOffset = 256;

    bool OnEval(IntPtr t, bool ask, IntPtr userData)
    {
        string name = Marshal.PtrToStringUTF8(t + NameOffset) ?? "";
        bool want = record!(name);
        if (ask) return want;
        if (!want) return true;
        int type = Marshal.ReadInt32(t);
        if (type != 0) return true;   // f32 only
        var ne = new long[4];
        var nb = new long[4];
        for (int i = 0; i < 4; i++) { ne[i] = Marshal.ReadInt64(t + NeOffset + 8 * i); nb[i] = Marshal.ReadInt64(t + NbOffset + 8 * i); }
        IntPtr data = Marshal.ReadIntPtr(t + DataOffset);
        if (data == IntPtr.Zero) return true;
        var values = new float[ne[0] * ne[1] * ne[2] * ne[3]];
        int k = 0;
        for (long i3 = 0; i3 < ne[3]; i3++)
            for (long i2 = 0; i2 < ne[2]; i2++)
                for (long i1 = 0; i1 < ne[1]; i1++)
                    for (long i0 = 0; i0 < ne[0]; i0++)
                        values[k++] = BitConverter.Int32BitsToSingle(Marshal.ReadInt32(data + (nint)(i0 * nb[0] + i1 * nb[1] + i2 * nb[2] + i3 * nb[3])));
        Recorded[name] = values;
        return true;
    }

    public void Dispose()
    {
        context.Dispose();
        model.Dispose();
        GC.KeepAlive(callback);
    }
}

public static class Stats
{
    public static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    /// <summary>Top-1 minus top-2.</summary>
    public static double Gap(ReadOnlySpan<float> x)
    {
        float a = float.NegativeInfinity, b = float.NegativeInfinity;
        foreach (var v in x)
        {
            if (v > a) { b = a; a = v; }
            else if (v > b) b = v;
        }
        return a - b;
    }

    /// <summary>‖a − b‖ / ‖b‖ in double.</summary>
    public static double Rel(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double num = 0, den = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = (double)actual[i] - expected[i];
            num += d * d;
            den += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(num / Math.Max(den, 1e-300));
    }

    public static double MaxAbs(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double m = 0;
        for (int i = 0; i < expected.Length; i++) m = Math.Max(m, Math.Abs((double)actual[i] - expected[i]));
        return m;
    }
}
