using System.Diagnostics;
using System.Runtime.InteropServices;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Llava.Bench.Race;

/// <summary>
/// llama.cpp (LLamaSharp 0.30.0's CPU backend) on the same files: the text model through llama_decode, the mmproj
/// through mtmd (tokenize with the image marker, mtmd_helper_eval_chunks for the whole LLaVA query, and
/// mtmd_encode_chunk alone for the image-encode time). llama.cpp's defaults otherwise (f16 KV cache, mmap).
/// </summary>
static class LlamaCppEngine
{
    // mtmd_encode_chunk is exported by libmtmd but not wrapped by LLamaSharp: bound here to the library it loaded.
    [DllImport("mtmd", CallingConvention = CallingConvention.Cdecl)]
    static extern int mtmd_encode_chunk(IntPtr ctx, IntPtr chunk);

    static void BindMtmd()
    {
        NativeLibrary.SetDllImportResolver(typeof(LlamaCppEngine).Assembly, (name, _, _) =>
        {
            if (name != "mtmd") return IntPtr.Zero;
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int i = line.IndexOf('/');
                if (i >= 0 && line.EndsWith("libmtmd.so")) return NativeLibrary.Load(line[i..]);
            }
            throw new DllNotFoundException("libmtmd.so is not loaded (LLamaSharp loads it with the mmproj)");
        });
    }

    public static EngineResult Run(string text, string mmproj, int threads, int runs)
    {
        NativeLogConfig.llama_log_set((level, message) => { if (level == LLamaLogLevel.Error) Console.Error.Write("  [llama.cpp] " + message); });
        BindMtmd();
        var p = new ModelParams(text)
        {
            ContextSize = Workload.ContextSize,
            BatchSize = 512,
            UBatchSize = 512,
            GpuLayerCount = 0,
            Threads = threads,
            BatchThreads = threads,
        };
        var sw = Stopwatch.StartNew();
        using var weights = LLamaWeights.LoadFromFile(p);
        using var context = weights.CreateContext(p);
        var mp = MtmdContextParams.Default();
        mp.NThreads = threads;
        mp.UseGpu = false;
        mp.PrintTimings = false;
        mp.Warmup = false;   // the race's own untimed first run warms up instead
        using var mtmd = MtmdWeights.LoadFromFile(mmproj, weights, mp);
        double load = sw.Elapsed.TotalSeconds;
        Console.Error.WriteLine($"  [llama.cpp] loaded in {load:F2} s (system info: {Marshal.PtrToStringAnsi(NativeApi.llama_print_system_info())})");
        var ctx = context.NativeHandle;
        var ids = Workload.PromptIds();
        var batch = new LLamaBatch();

        void Prefill()
        {
            ctx.MemoryClear(true);
            batch.Clear();
            for (int i = 0; i < ids.Length; i++) batch.Add((LLamaToken)ids[i], i, LLamaSeqId.Zero, i == ids.Length - 1);
            if (ctx.Decode(batch) is var r && r != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode: {r}");
        }

        var prefill = Workload.Runs(runs, () => Workload.Time(Prefill), "[llama.cpp] prefill 512");

        var decode = Workload.Runs(runs, () =>
        {
            Prefill();
            int tok = Workload.ArgMax(ctx.GetLogitsIth(batch.TokenCount - 1));
            return Workload.Time(() =>
            {
                for (int i = 0; i < Workload.DecodeTokens; i++)
                {
                    batch.Clear();
                    batch.Add((LLamaToken)tok, ids.Length + i, LLamaSeqId.Zero, true);
                    if (ctx.Decode(batch) is var r && r != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode: {r}");
                    tok = Workload.ArgMax(ctx.GetLogitsIth(0));
                }
            });
        }, "[llama.cpp] decode 128");

        var rgb = Workload.ImageRgb();
        string prompt = Workload.LlavaPrompt(NativeApi.MtmdDefaultMarker() ?? "<__media__>");
        SafeMtmdInputChunks Tokenize()
        {
            using var bitmap = SafeMtmdEmbed.FromRgbBytes(RaceShape.ImageSize, RaceShape.ImageSize, rgb)
                ?? throw new InvalidOperationException("mtmd_bitmap_init failed");
            int rc = mtmd.NativeHandle.Tokenize(prompt, true, true, [bitmap], out var chunks);
            if (rc != 0 || chunks is null) throw new InvalidOperationException($"mtmd_tokenize: {rc}");
            return chunks;
        }

        // Image encode alone: the image chunk of a tokenized query through mtmd_encode_chunk (CLIP + projector).
        double[] encode;
        using (var chunks = Tokenize())
        {
            IntPtr imageChunk = IntPtr.Zero;
            foreach (var c in chunks.Enumerate())
                if (c.Type == SafeMtmdInputChunk.SafeMtmdInputChunkType.Image) imageChunk = c.NativePtr;
            if (imageChunk == IntPtr.Zero) throw new InvalidOperationException("mtmd_tokenize produced no image chunk");
            IntPtr mctx = mtmd.NativeHandle.DangerousGetHandle();
            encode = Workload.Runs(runs, () => Workload.Time(() =>
            {
                if (mtmd_encode_chunk(mctx, imageChunk) != 0) throw new InvalidOperationException("mtmd_encode_chunk failed");
            }), "[llama.cpp] image encode");
        }

        // Time to first token: RGB bytes → bitmap → tokenize → encode + decode every chunk → argmax.
        int positions = 0;
        var ttft = Workload.Runs(runs, () =>
        {
            ctx.MemoryClear(true);
            return Workload.Time(() =>
            {
                using var chunks = Tokenize();
                int nPast = 0;
                int rc = mtmd.NativeHandle.EvaluateChunks(chunks, ctx, ref nPast, 0, 512, true);
                if (rc != 0) throw new InvalidOperationException($"mtmd_helper_eval_chunks: {rc}");
                Workload.ArgMax(ctx.GetLogitsIth(-1));
                positions = nPast;
            });
        }, "[llama.cpp] ttft", warmup: false);

        return new EngineResult
        {
            Engine = "llama.cpp",
            Threads = threads,
            LoadSeconds = load,
            PrefillSeconds = prefill,
            DecodeSeconds = decode,
            ImageSeconds = encode,
            TtftSeconds = ttft,
            TtftPositions = positions,
            PeakRssMiB = Workload.PeakRssMiB(),
            Notes = "LLamaSharp 0.30.0 CPU backend, default f16 KV cache / flash-attention setting; image = mtmd_encode_chunk",
        };
    }
}
