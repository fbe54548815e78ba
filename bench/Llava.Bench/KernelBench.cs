using System.Runtime.InteropServices;
using Llava.Tensors;
using Llava.Tensors.Quantization;

namespace Llava.Bench;

/// <summary>
/// The hot kernels at LLaVA-1.5-7B shapes. Decode (tokens = 1) is memory-bound: report GB/s of weights streamed.
/// Prefill / image encoding are compute-bound: report GFLOP/s (2·rows·cols·tokens per matmul).
/// </summary>
static unsafe class KernelBench
{
    public static void Run(BenchOptions o)
    {
        // LLAVA_KERNELS=quant runs only the quantized-prefill section (TinyLlama-1.1B shapes).
        if (Environment.GetEnvironmentVariable("LLAVA_KERNELS") == "quant") { QuantPrefill(o); return; }
        // LLAVA_KERNELS=decode compares the quantized decode kernel families (scalar excluded) back to back;
        // LLAVA_DECODE_TYPES=Q4_0,Q4_K limits the types, LLAVA_DECODE_COLD_MB sets the cold sweep's size (default 768).
        if (Environment.GetEnvironmentVariable("LLAVA_KERNELS") == "decode") { QuantDecodeKernels(o); return; }
        // LLAVA_KERNELS=quantize: the K-quant reference quantizers (what `llava convert` and --load-4bit run), scalar
        // scale searches against the eight-lane ones, on one thread.
        if (Environment.GetEnvironmentVariable("LLAVA_KERNELS") == "quantize") { Quantizers(o); return; }
        Console.WriteLine("matmul: weights (rows x cols), dtype, tokens -> median time, throughput");
        foreach (var (rows, cols) in new[] { (4096, 4096), (11008, 4096), (4096, 11008) })
            foreach (var dtype in new[] { DType.BF16, DType.F16, DType.F32 })
            {
                long bytes = (long)rows * cols * dtype.Size();
                void* w = NativeMemory.AlignedAlloc((nuint)bytes, 64);
                try
                {
                    Fill((byte*)w, bytes, dtype);
                    var m = new WeightMatrix(dtype, rows, cols, w);
                    foreach (int tokens in new[] { 1, 64, 577 })
                    {
                        var x = Random(tokens * cols);
                        var y = new float[tokens * rows];
                        double s = Stats.Median(tokens == 1 ? o.Runs * 4 : o.Runs, () => MatMul.Forward(y, x, m, default, tokens));
                        string rate = tokens == 1 ? $"{bytes / s / 1e9,7:F1} GB/s" : $"{2.0 * rows * cols * tokens / s / 1e9,7:F1} GFLOP/s";
                        Console.WriteLine($"  {rows,5} x {cols,-5} {dtype,-4} tokens {tokens,4}: {s * 1e3,9:F2} ms  {rate}");
                    }
                }
                finally { NativeMemory.AlignedFree(w); }
            }

        Console.WriteLine("attention (decode, 32 heads x 128, one query over the cache):");
        foreach (int kv in new[] { 512, 2048 })
        {
            var q = Random(32 * 128);
            var k = Random(kv * 32 * 128);
            var v = Random(kv * 32 * 128);
            var outp = new float[32 * 128];
            double s = Stats.Median(o.Runs * 4, () => Attention.Forward(outp, q, k, v, 1, kv, 32, 32, 128, 0.088f, true, kv - 1));
            Console.WriteLine($"  kv {kv,5}: {s * 1e3,8:F3} ms  {2.0 * kv * 32 * 128 * 4 / s / 1e9,6:F1} GB/s of K+V");
        }
    }

    /// <summary>Reference quantizer throughput, input MB/s of f32 on one thread, scalar search vs eight lanes.</summary>
    static void Quantizers(BenchOptions o)
    {
        const int n = 1 << 20;   // one 1M-value row set: 4 MB of f32
        var x = Random(n);
        Console.WriteLine("reference quantizers, 1 thread, MB/s of f32 input (median):");
        foreach (var type in new[] { GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q4_0, GgmlType.Q8_0 })
        {
            var dst = new byte[GgmlTypeInfo.RowBytes(type, n)];
            var line = $"  {type,-5}";
            foreach (bool? lanes in new bool?[] { false, true })
            {
                KQuantSearch8.Force = lanes;
                double s = Stats.Median(o.Runs, () => GgmlQuant.QuantizeReference(type, x, dst));
                line += $"  {(lanes == true ? "lanes" : "scalar")} {4.0 * n / s / 1e6,7:F1}";
            }
            KQuantSearch8.Force = null;
            Console.WriteLine(line);
        }
    }

    /// <summary>Quantized weights (ggml blocks) at TinyLlama-1.1B shapes: prefill GOPS (2·tokens·rows·cols per matmul) and decode GB/s.</summary>
    static void QuantPrefill(BenchOptions o)
    {
        Console.WriteLine("quantized matmul: weights (rows x cols), type, tokens -> median time, throughput (GOPS = 2·tokens·rows·cols / s)");
        foreach (var (rows, cols) in new[] { (2048, 2048), (5632, 2048), (2048, 5632) })
            foreach (var type in new[] { GgmlType.Q4_0, GgmlType.Q8_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K })
            {
                long rowBytes = GgmlTypeInfo.RowBytes(type, cols), bytes = rowBytes * rows;
                byte* w = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
                try
                {
                    var vals = Random(rows * cols);
                    Parallel.For(0, rows, r => GgmlQuant.QuantizeReference(type, vals.AsSpan(r * cols, cols), new Span<byte>(w + r * rowBytes, (int)rowBytes)));
                    var m = new WeightMatrix(type, rows, cols, w);
                    foreach (int tokens in new[] { 1, 512 })
                    {
                        var x = Random(tokens * cols);
                        var y = new float[tokens * rows];
                        int runs = tokens == 1 ? o.Runs * 4 : o.Runs;
                        var cpu0 = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
                        double s = Stats.Median(runs, () => MatMul.Forward(y, x, m, default, tokens));
                        // CPU seconds per call (warm-up included) next to wall time: on a shared machine the wall clock
                        // also counts time the threads were descheduled.
                        double cpu = (System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds / (runs + 1);
                        string rate = tokens == 1 ? $"{bytes / s / 1e9,7:F1} GB/s" : $"{2.0 * rows * cols * tokens / s / 1e9,7:F1} GOPS ({2.0 * rows * cols * tokens / cpu / 1e9:F1} per CPU-second)";
                        Console.WriteLine($"  {rows,5} x {cols,-5} {type,-4} tokens {tokens,4}: {s * 1e3,9:F2} ms  {rate}");
                    }
                }
                finally { NativeMemory.AlignedFree(w); }
            }
    }

    /// <summary>
    /// Decode GB/s per kernel family (QuantDot.Force), interleaved round by round so machine load hits all alike.
    /// "hot": one matrix, called repeatedly (stays in cache: compute-bound); "cold": a sweep over copies totalling
    /// more than the last-level cache (memory-bound).
    /// </summary>
    static void QuantDecodeKernels(BenchOptions o)
    {
        var kernels = new[] { QuantDot.Kernel.Avx2, QuantDot.Kernel.Vnni }.Where(QuantDot.Supported).ToArray();
        // One thread runs inline on this thread: time it by its CPU clock, which skips time descheduled on a shared machine.
        bool cpuClock = Workers.ThreadCount == 1;
        Console.WriteLine($"quantized decode GB/s by kernel family ({string.Join(", ", kernels)}), median of interleaved rounds, {(cpuClock ? "thread CPU time" : "wall time")}");
        long coldBytes = long.TryParse(Environment.GetEnvironmentVariable("LLAVA_DECODE_COLD_MB"), out var mb) ? mb << 20 : 768L << 20;
        foreach (var (rows, cols, cold) in new[] { (2048, 2048, false), (5632, 2048, false), (2048, 5632, false), (4096, 11008, false), (11008, 4096, true) })
            foreach (var type in (Environment.GetEnvironmentVariable("LLAVA_DECODE_TYPES") is { } tl ? tl.Split(',').Select(Enum.Parse<GgmlType>) : new[] { GgmlType.Q4_0, GgmlType.Q8_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K }))
            {
                long rowBytes = GgmlTypeInfo.RowBytes(type, cols), bytes = rowBytes * rows;
                int copies = cold ? (int)Math.Max(1, (coldBytes + bytes - 1) / bytes) : 1;
                var ws = new byte*[copies];
                try
                {
                    var vals = Random(rows * cols);
                    for (int c = 0; c < copies; c++)
                    {
                        byte* w = ws[c] = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
                        if (c == 0) Parallel.For(0, rows, r => GgmlQuant.QuantizeReference(type, vals.AsSpan(r * cols, cols), new Span<byte>(w + r * rowBytes, (int)rowBytes)));
                        else Buffer.MemoryCopy(ws[0], w, bytes, bytes);
                    }
                    var ms = new WeightMatrix[copies];
                    for (int c = 0; c < copies; c++) ms[c] = new WeightMatrix(type, rows, cols, ws[c]);
                    var x = Random(cols);
                    var y = new float[rows];
                    int rounds = cold ? o.Runs * 2 : o.Runs * 10, reps = cold ? 1 : Math.Max(1, (int)(4_000_000 / bytes));
                    var times = kernels.Select(_ => new double[rounds]).ToArray();
                    for (int round = -1; round < rounds; round++)
                        for (int k = 0; k < kernels.Length; k++)
                        {
                            QuantDot.Force = kernels[k];
                            double t0 = cpuClock ? ThreadCpuSeconds() : 0;
                            var sw = System.Diagnostics.Stopwatch.StartNew();
                            for (int rep = 0; rep < reps; rep++) foreach (var m in ms) MatMul.Forward(y, x, m, default, 1);
                            if (round >= 0) times[k][round] = (cpuClock ? ThreadCpuSeconds() - t0 : sw.Elapsed.TotalSeconds) / reps;
                        }
                    QuantDot.Force = null;
                    var cells = kernels.Select((k, i) => { Array.Sort(times[i]); return $"{k} {bytes * copies / times[i][rounds / 2] / 1e9,6:F1}"; });
                    Console.WriteLine($"  {(cold ? "cold" : "hot "),4} {rows,5} x {cols,-5} {type,-4}: {string.Join("   ", cells)} GB/s");
                }
                finally { for (int c = 0; c < copies; c++) if (ws[c] != null) NativeMemory.AlignedFree(ws[c]); }
            }
    }

    struct Timespec { public long Sec, Nsec; }
    [DllImport("libc", EntryPoint = "clock_gettime")] static extern int ClockGetTime(int clock, out Timespec ts);

    /// <summary>CPU time of the calling thread (Linux CLOCK_THREAD_CPUTIME_ID); falls back to wall time elsewhere.</summary>
    static double ThreadCpuSeconds()
    {
        if (!OperatingSystem.IsLinux()) return System.Diagnostics.Stopwatch.GetTimestamp() / (double)System.Diagnostics.Stopwatch.Frequency;
        ClockGetTime(3, out var ts);
        return ts.Sec + ts.Nsec * 1e-9;
    }

    static float[] Random(int n)
    {
        var r = new Random(1);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(r.NextDouble() * 2 - 1);
        return a;
    }

    static void Fill(byte* p, long bytes, DType dtype)
    {
        var r = new Random(2);
        long n = bytes / dtype.Size();
        for (long i = 0; i < n; i++)
        {
            float f = (float)(r.NextDouble() * 0.1 - 0.05);
            switch (dtype)
            {
                case DType.F32: ((float*)p)[i] = f; break;
                case DType.F16: ((Half*)p)[i] = (Half)f; break;
                case DType.BF16: ((ushort*)p)[i] = DTypeConvert.F32ToBF16(f); break;
            }
        }
    }
}
