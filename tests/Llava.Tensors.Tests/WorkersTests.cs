// Contract: Workers.Run covers every item exactly once, runs nested/small jobs inline, and propagates job exceptions.
using Llava.Tensors;

namespace Llava.Tensors.Tests;

public unsafe class WorkersTests
{
    struct CountJob : IParallelJob
    {
        public int* Counts;
        public void Execute(int start, int end) { for (int i = start; i < end; i++) Interlocked.Increment(ref Counts[i]); }
    }

    struct NestedJob : IParallelJob
    {
        public int* Counts; public int Inner;
        public void Execute(int start, int end)
        {
            for (int i = start; i < end; i++)
            {
                var inner = new CountJob { Counts = Counts + i * Inner };
                Workers.Run(ref inner, Inner);   // pool is busy: must run inline, not deadlock
            }
        }
    }

    struct ThrowJob : IParallelJob
    {
        public void Execute(int start, int end) { if (start <= 50 && 50 < end) throw new InvalidOperationException("item 50"); }
    }

    [Theory]
    [InlineData(1)] [InlineData(2)] [InlineData(3)] [InlineData(8)]
    public void EveryItemOnce(int threads)
    {
        TestUtil.With(Simd.Width, threads, () =>
        {
            foreach (int items in new[] { 0, 1, 2, 3, 7, 64, 1000, 12345 })
                foreach (int min in new[] { 1, 5, 100 })
                    for (int rep = 0; rep < 20; rep++)
                    {
                        var counts = new int[Math.Max(1, items)];
                        fixed (int* c = counts)
                        {
                            var job = new CountJob { Counts = c };
                            Workers.Run(ref job, items, min);
                        }
                        for (int i = 0; i < items; i++) Assert.Equal(1, counts[i]);
                    }
        });
    }

    [Fact]
    public void NestedRunsInline()
    {
        TestUtil.With(Simd.Width, 3, () =>
        {
            var counts = new int[40 * 30];
            fixed (int* c = counts)
            {
                var job = new NestedJob { Counts = c, Inner = 30 };
                Workers.Run(ref job, 40);
            }
            Assert.All(counts, v => Assert.Equal(1, v));
        });
    }

    [Fact]
    public void ExceptionPropagatesAndPoolRecovers()
    {
        TestUtil.With(Simd.Width, 3, () =>
        {
            var job = new ThrowJob();
            var e = Assert.Throws<InvalidOperationException>(() => Workers.Run(ref job, 100));
            Assert.Equal("item 50", e.Message);
            EveryItemOnce(3);
        });
    }

    [Fact]
    public void ConcurrentCallersAreSafe()
    {
        TestUtil.With(Simd.Width, 3, () =>
        {
            Parallel.For(0, 8, _ =>
            {
                for (int rep = 0; rep < 50; rep++)
                {
                    var counts = new int[500];
                    fixed (int* c = counts)
                    {
                        var job = new CountJob { Counts = c };
                        Workers.Run(ref job, 500);
                    }
                    Assert.All(counts, v => Assert.Equal(1, v));
                }
            });
        });
    }
}
