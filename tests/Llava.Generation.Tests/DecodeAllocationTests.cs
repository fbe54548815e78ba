using Llava.Generation;
using Llava.Tensors;

namespace Llava.Tests;

[CollectionDefinition(nameof(DecodeAllocationTests), DisableParallelization = true)]
public class DecodeAllocationCollection;

/// <summary>
/// No allocation per decoded token. Not in parallel with other tests: while another test owns the worker pool a job
/// runs inline on the caller, whose thread-local scratch then grows once for kernels it had not run before, which is
/// a first-use allocation, not a per-token one, but would be counted here.
/// </summary>
[Collection(nameof(DecodeAllocationTests))]
public sealed class DecodeAllocationTests(TinyModels models) : IClassFixture<TinyModels>
{
    [Fact]
    public void DecodeStep_AllocatesNothing_OnCallerOrWorkers()
    {
        var c = ReferenceCase.Get("text_only");
        var session = new LlavaSession(models.Hf);
        session.Prefill(c.InputIdsHf, []);
        for (int i = 0; i < 3; i++) session.Step(100 + i);   // warm up (JIT, thread-local scratch)
        var before = WorkerAllocations.Snapshot();
        long caller = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 8; i++) session.Step(200 + i);
        caller = GC.GetAllocatedBytesForCurrentThread() - caller;
        var after = WorkerAllocations.Snapshot();
        Assert.Equal(0, caller);
        int self = Environment.CurrentManagedThreadId;   // measured exactly above; the snapshots themselves allocate here
        foreach (var (thread, bytes) in after.Where(kv => kv.Key != self))
            Assert.True(bytes == before.GetValueOrDefault(thread, bytes), $"worker thread {thread} allocated {bytes - before.GetValueOrDefault(thread)} bytes");
    }

}
