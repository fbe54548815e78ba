// Contract: the decode step (MatMul tokens=1, Attention tokens=1, RmsNorm, activations) allocates nothing after warm-up, on the caller or on workers.
using Llava.Tensors;

namespace Llava.Tensors.Tests;

public class AllocationTests
{
    [Theory]
    [InlineData(1)] [InlineData(2)] [InlineData(3)]
    public void DecodeStepAllocatesNothing(int threads)
    {
        TestUtil.With(Simd.Native, threads, () =>
        {
            // Sizes large enough that every kernel actually splits across workers.
            int dim = 1024, ffn = 2816, heads = 8, kvHeads = 2, headDim = dim / heads, kvLen = 700;
            var rng = new Random(1);
            var w = TestUtil.Weights(DType.BF16, ffn, dim, TestUtil.Rand(rng, ffn * dim));
            var wh = TestUtil.Weights(DType.F16, dim, dim, TestUtil.Rand(rng, dim * dim));
            float[] x = TestUtil.Rand(rng, dim), norm = TestUtil.Rand(rng, dim), y = new float[ffn], y2 = new float[dim], up = TestUtil.Rand(rng, ffn);
            float[] q = TestUtil.Rand(rng, dim), k = TestUtil.Rand(rng, kvLen * kvHeads * headDim), v = TestUtil.Rand(rng, kvLen * kvHeads * headDim), o = new float[dim];
            float[] cos = TestUtil.Rand(rng, headDim / 2), sin = TestUtil.Rand(rng, headDim / 2);

            void Step()
            {
                RmsNorm.Forward(x, x, norm, 1, dim, 1e-6f);
                MatMul.Forward(y, x, w, [], 1);
                MatMul.Forward(y2, x, wh, norm, 1);
                Activations.SiluMul(y, up);
                Rope.Apply(q, cos, sin, 1, heads, headDim);
                Attention.Forward(o, q, k, v, 1, kvLen, heads, kvHeads, headDim, 0.1f, causal: true, queryOffset: kvLen - 1);
                Elementwise.Add(x, o);
            }

            // Warm-up: thread-static scratch, worker start, and tiered JIT (tier-0 call counting and the tier-1/OSR
            // swaps allocate on the calling thread; those settle within ~100s of ms).
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (sw.ElapsedMilliseconds < 1500) Step();
            long mine = GC.GetAllocatedBytesForCurrentThread();
            long total = GC.GetTotalAllocatedBytes(precise: true);
            for (int i = 0; i < 100; i++) Step();
            long mineDelta = GC.GetAllocatedBytesForCurrentThread() - mine;
            long totalDelta = GC.GetTotalAllocatedBytes(precise: true) - total;
            Assert.Equal(0, mineDelta);
            Assert.Equal(0, totalDelta);
        });
    }
}
