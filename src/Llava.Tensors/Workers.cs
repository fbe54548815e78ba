// Contract: a static pool of persistent worker threads that runs struct jobs over [0, items) with zero allocation per call.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;

namespace Llava.Tensors;

/// <summary>
/// Persistent worker pool. <see cref="Run{TJob}"/> splits [0, items) into chunks claimed dynamically (an atomic
/// counter) by the caller and up to <see cref="ThreadCount"/>-1 workers. Dynamic claiming keeps cores busy when the
/// machine is shared; each item's result never depends on how the range was split, so results are deterministic.
/// Nested or concurrent calls (pool busy) run inline on the calling thread, so they can never deadlock.
/// </summary>
public static unsafe class Workers
{
    // Workers spin this long after a job before blocking: the decode loop issues hundreds of short jobs per
    // token and a kernel wake-up (~10-50 µs) would dominate them.
    const long SpinMicroseconds = 200;

    static int threadCount = Math.Max(1, Environment.ProcessorCount);
    static readonly object startLock = new();
    static Worker[] pool = [];

    // The current job. Written by the dispatching thread before `generation` is bumped (a full fence), read by workers after.
    static delegate*<void*, int, int, void> jobFn;
    static void* jobPtr;
    static int jobItems, jobChunk;
    static int nextChunk;      // next unclaimed chunk start, advanced atomically
    static int pending;        // workers of this job that have not finished
    static int generation;     // bumped once per dispatched job (only by the pool owner)
    static int busy;           // 1 while a thread owns the pool
    static Exception? error;

    /// <summary>Number of threads a job may use, including the caller. Defaults to <see cref="Environment.ProcessorCount"/>.</summary>
    public static int ThreadCount => Volatile.Read(ref threadCount);

    /// <summary>Sets the thread count (call at startup; also safe later while no job is running).</summary>
    public static void SetThreadCount(int n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        Volatile.Write(ref threadCount, n);
    }

    /// <summary>Splits [0, items) across threads including the caller; runs inline when fewer than
    /// 2*<paramref name="minItemsPerThread"/> items, when one thread is configured, or when called from inside a job.</summary>
    public static void Run<TJob>(ref TJob job, int items, int minItemsPerThread = 1) where TJob : struct, IParallelJob
    {
        if (items <= 0) return;
        int use = Math.Min(ThreadCount, items / Math.Max(1, minItemsPerThread));
        if (use <= 1 || Interlocked.CompareExchange(ref busy, 1, 0) != 0)
        {
            job.Execute(0, items);
            return;
        }
        try
        {
            // Copy to a stack local so the pointer handed to workers cannot be moved by the GC (job may live on the heap).
            TJob local = job;
            Dispatch(&Invoke<TJob>, Unsafe.AsPointer(ref local), items, use);
            job = local;
        }
        finally { Volatile.Write(ref busy, 0); }
    }

    static void Invoke<TJob>(void* job, int start, int end) where TJob : struct, IParallelJob
        => Unsafe.AsRef<TJob>(job).Execute(start, end);

    static void Dispatch(delegate*<void*, int, int, void> fn, void* job, int items, int use)
    {
        EnsureWorkers(use - 1);
        // ~4 chunks per thread balances load on a shared machine without making chunks tiny.
        int chunk = Math.Max(1, (items + use * 4 - 1) / (use * 4));
        jobFn = fn; jobPtr = job; jobItems = items; jobChunk = chunk;
        nextChunk = 0;
        error = null;
        Volatile.Write(ref pending, use - 1);
        int gen = ++generation;
        // Each participating worker gets its own go-signal, so idle workers never read job fields that may be rewritten.
        var workers = pool;
        for (int i = 0; i < use - 1; i++) workers[i].Start(gen);

        RunChunks();

        // Wait for workers; they are mid-chunk at worst, so spin/yield rather than block.
        var sw = new SpinWait();
        while (Volatile.Read(ref pending) != 0) sw.SpinOnce(sleep1Threshold: -1);
        if (error is { } e) ExceptionDispatchInfo.Capture(e).Throw();
    }

    static void RunChunks()
    {
        var fn = jobFn; var ptr = jobPtr; int items = jobItems, chunk = jobChunk;
        while (true)
        {
            int start = Interlocked.Add(ref nextChunk, chunk) - chunk;
            if (start >= items) return;
            try { fn(ptr, start, Math.Min(items, start + chunk)); }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref error, e, null);
                Volatile.Write(ref nextChunk, items);  // abandon remaining chunks
                return;
            }
        }
    }

    static void EnsureWorkers(int n)
    {
        if (pool.Length >= n) return;
        lock (startLock)
        {
            if (pool.Length >= n) return;
            var grown = new Worker[n];
            Array.Copy(pool, grown, pool.Length);
            for (int i = pool.Length; i < n; i++) grown[i] = new Worker(i);
            pool = grown;
        }
    }

    sealed class Worker
    {
        readonly ManualResetEventSlim wake = new(false, spinCount: 1);
        int sleeping;
        int go;                 // generation this worker was last asked to run
        readonly int initialGo; // captured before the thread starts: a Start() racing with thread start-up is not lost

        public Worker(int index)
        {
            go = initialGo = Volatile.Read(ref generation);
            var t = new Thread(Loop) { IsBackground = true, Name = "Llava.Tensors worker " + index };
            t.Start();
        }

        public void Start(int gen)
        {
            // Both sides use full fences (Exchange): either the worker sees the new go value or we see sleeping==1.
            Interlocked.Exchange(ref go, gen);
            if (Volatile.Read(ref sleeping) != 0) wake.Set();
        }

        void Loop()
        {
            int seen = initialGo;
            long spinTicks = Stopwatch.Frequency * SpinMicroseconds / 1_000_000;
            while (true)
            {
                long spinUntil = Stopwatch.GetTimestamp() + spinTicks;
                int g;
                var sw = new SpinWait();
                while ((g = Volatile.Read(ref go)) == seen)
                {
                    if (Stopwatch.GetTimestamp() < spinUntil) { sw.SpinOnce(sleep1Threshold: -1); continue; }
                    wake.Reset();
                    Interlocked.Exchange(ref sleeping, 1);
                    if (Volatile.Read(ref go) == seen) wake.Wait();
                    Volatile.Write(ref sleeping, 0);
                    spinUntil = Stopwatch.GetTimestamp() + spinTicks;
                }
                seen = g;
                RunChunks();
                Interlocked.Decrement(ref pending);
            }
        }
    }
}
