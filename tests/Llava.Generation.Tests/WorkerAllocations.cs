using Llava.Tensors;

namespace Llava.Tests;

/// <summary>
/// Per-thread allocated-bytes counters of every Workers thread, read by a job that runs exactly once on each
/// participant (a barrier stops any thread from taking two items). Test-host threads are not included, so the
/// measurement holds while other tests run in parallel.
/// </summary>
static unsafe class WorkerAllocations
{
    struct Probe : IParallelJob
    {
        public long* Bytes; public int* Ids; public int* Arrived; public int N;
        public void Execute(int start, int end)
        {
            for (int i = start; i < end; i++)
            {
                Ids[i] = Environment.CurrentManagedThreadId;
                Bytes[i] = GC.GetAllocatedBytesForCurrentThread();
                Interlocked.Increment(ref *Arrived);
                while (Volatile.Read(ref *Arrived) < N) Thread.SpinWait(10);
            }
        }
    }

    public static Dictionary<int, long> Snapshot()
    {
        int n = Workers.ThreadCount;
        var bytes = new long[n];
        var ids = new int[n];
        var arrived = new int[1];
        fixed (long* pb = bytes) fixed (int* pi = ids) fixed (int* pa = arrived)
        {
            var probe = new Probe { Bytes = pb, Ids = pi, Arrived = pa, N = n };
            Workers.Run(ref probe, n);
        }
        var d = new Dictionary<int, long>();
        for (int i = 0; i < n; i++) d[ids[i]] = bytes[i];
        return d;
    }
}
