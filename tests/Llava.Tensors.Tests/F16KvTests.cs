// Contract: the f16 KV cache kernels: f16→f32 widening is exact for all 65536 bit patterns, f32→f16 rounds to nearest-even as System.Half, and attention over f16 K/V matches its scalar twin (odd head dims, odd lengths, GQA ratios, tails, every width / thread count), equals the f32 kernels on the widened values bit for bit, and allocates nothing in decode.
using Llava.Tensors;

namespace Llava.Tensors.Tests;

public unsafe class F16KvTests
{
    static Half[] ToHalf(float[] x)
    {
        var h = new Half[x.Length];
        F16KvReference.F32ToF16(x, h);
        return h;
    }

    static float[] Widen(Half[] h)
    {
        var f = new float[h.Length];
        F16KvReference.F16ToF32(h, f);
        return f;
    }

    [Theory]
    [InlineData(512)] [InlineData(256)] [InlineData(0)]
    public void F16ToF32_IsExact_ForEveryBitPattern(int width)
    {
        TestUtil.With(width, 1, () =>
        {
            var src = new ushort[65536 + 5];   // + a tail that is not a multiple of 8
            for (int i = 0; i < src.Length; i++) src[i] = (ushort)i;
            var dst = new float[src.Length];
            fixed (ushort* s = src) fixed (float* d = dst)
                DTypeConvert.F16ToF32(s, d, src.Length);
            for (int i = 0; i < src.Length; i++)
            {
                float e = (float)BitConverter.UInt16BitsToHalf(src[i]);
                if (float.IsNaN(e)) Assert.True(float.IsNaN(dst[i]) && (BitConverter.SingleToUInt32Bits(dst[i]) >> 31) == (uint)(src[i] >> 15), $"0x{src[i]:x4}");
                else Assert.True(BitConverter.SingleToUInt32Bits(e) == BitConverter.SingleToUInt32Bits(dst[i]), $"0x{src[i]:x4}: expected {e:R}, got {dst[i]:R}");
            }
        });
    }

    [Theory]
    [InlineData(512)] [InlineData(256)] [InlineData(0)]
    public void F32ToF16_RoundsToNearestEven_AsSystemHalf(int width)
    {
        TestUtil.With(width, 1, () =>
        {
            var rng = new Random(5);
            var x = new List<float>
            {
                0f, -0f, 1f, -1f, 65504f, 65519.996f, 65520f, -65520f, 1e9f, float.PositiveInfinity, float.NegativeInfinity, float.NaN,
                6.1035156e-5f, 5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f, 1e-10f, -1e-10f, float.Epsilon, float.MaxValue,
                1.00048828125f, 1.00146484375f,   // exact ties between f16 neighbours: round to the even one
            };
            // Every f16 value and the midpoints between neighbours (ties), plus random bit patterns of every magnitude.
            for (int h = 0; h < 0x7c00; h++)
            {
                float a = (float)BitConverter.UInt16BitsToHalf((ushort)h), b = (float)BitConverter.UInt16BitsToHalf((ushort)(h + 1));
                x.Add(a); x.Add(-a); x.Add((float)(((double)a + b) / 2)); x.Add(-(float)(((double)a + b) / 2));
            }
            for (int i = 0; i < 20000; i++) x.Add(BitConverter.Int32BitsToSingle(rng.Next() | (rng.Next(2) << 31)));
            for (int i = 0; i < 20000; i++) x.Add((float)((rng.NextDouble() * 2 - 1) * Math.Pow(2, rng.Next(-30, 20))));
            var src = x.ToArray();
            var expected = new Half[src.Length];
            var actual = new Half[src.Length];
            F16KvReference.F32ToF16(src, expected);
            DTypeConvert.F32ToF16(src, actual);
            for (int i = 0; i < src.Length; i++)
            {
                if (Half.IsNaN(expected[i])) { Assert.True(Half.IsNaN(actual[i]), $"{src[i]:R}"); continue; }
                Assert.True(BitConverter.HalfToUInt16Bits(expected[i]) == BitConverter.HalfToUInt16Bits(actual[i]),
                    $"{src[i]:R}: expected 0x{BitConverter.HalfToUInt16Bits(expected[i]):x4}, got 0x{BitConverter.HalfToUInt16Bits(actual[i]):x4}");
            }
        });
    }

    static void Check(int tokens, int kvLen, int heads, int kvHeads, int headDim, bool causal, int offset, int seed)
    {
        var rng = new Random(seed);
        float[] q = TestUtil.Rand(rng, tokens * heads * headDim, 2f);
        Half[] k = ToHalf(TestUtil.Rand(rng, kvLen * kvHeads * headDim, 2f)), v = ToHalf(TestUtil.Rand(rng, kvLen * kvHeads * headDim));
        float scale = 1f / MathF.Sqrt(Math.Max(1, headDim));
        string what = $"f16 KV t={tokens} kv={kvLen} h={heads}/{kvHeads} d={headDim} causal={causal} off={offset}";
        var expected = new float[q.Length];
        F16KvReference.Attention(expected, q, k, v, tokens, kvLen, heads, kvHeads, headDim, scale, causal, offset);
        var actual = new float[q.Length];
        actual.AsSpan().Fill(12345f);
        Attention.ForwardF16Kv(actual, q, k, v, tokens, kvLen, heads, kvHeads, headDim, scale, causal, offset);
        // As AttentionTests: the widening is exact, so only the f32 kernel's rounding remains.
        double bound = 1e-5 * (1 + scale * headDim * 2 * 2);
        TestUtil.Close(expected, actual, _ => bound, what);

        // Same kernels after the widening: bit-identical to the f32 path on the widened cache.
        var f32 = new float[q.Length];
        Attention.Forward(f32, q, Widen(k), Widen(v), tokens, kvLen, heads, kvHeads, headDim, scale, causal, offset);
        for (int i = 0; i < f32.Length; i++)
            Assert.True(BitConverter.SingleToUInt32Bits(f32[i]) == BitConverter.SingleToUInt32Bits(actual[i]) || (float.IsNaN(f32[i]) && float.IsNaN(actual[i])),
                $"{what}[{i}]: f32 kernel {f32[i]:R}, f16 kernel {actual[i]:R}");
    }

    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void MatchesReference(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            int seed = 1000;
            foreach (int headDim in new[] { 1, 7, 8, 13, 16, 33, 64, 80 })
            {
                // decode: 4-key groups and their tails, GQA 8/2 and 12/4 (3 per group), MHA, MQA
                foreach (int kvLen in new[] { 1, 2, 3, 4, 5, 9, 31, 130 })
                {
                    Check(1, kvLen, 8, 2, headDim, causal: true, offset: kvLen - 1, seed++);
                    Check(1, kvLen, 12, 4, headDim, causal: true, offset: kvLen - 1, seed++);
                    Check(1, kvLen, 5, 5, headDim, causal: true, offset: kvLen / 2, seed++);
                    Check(1, kvLen, 6, 1, headDim, causal: false, offset: 0, seed++);
                }
                // prefill, with and without a cache already holding `offset` positions; key blocks of 128 and their tails
                Check(5, 5, 8, 2, headDim, causal: true, offset: 0, seed++);
                Check(33, 40, 8, 2, headDim, causal: true, offset: 7, seed++);
                Check(20, 150, 6, 3, headDim, causal: true, offset: 130, seed++);
                Check(7, 131, 9, 3, headDim, causal: true, offset: 124, seed++);
                Check(3, 200, 8, 1, headDim, causal: false, offset: 0, seed++);
            }
            Check(17, 300, 32, 4, 64, causal: true, offset: 283, seed++);   // TinyLlama's 8 heads per kv head
            Check(1, 17, 4, 2, 16, causal: true, offset: 40, seed++);       // offset past the cache: clamped to kvLen
        });
    }

    [Theory]
    [InlineData(1)] [InlineData(2)] [InlineData(3)]
    public void LongCaches(int threads)
    {
        TestUtil.With(Simd.Native, threads, () =>
        {
            foreach (int kvLen in new[] { 511, 1025, 2049 })
            {
                Check(1, kvLen, 32, 4, 64, causal: true, offset: kvLen - 1, seed: kvLen);
                Check(1, kvLen, 8, 8, 128, causal: true, offset: kvLen - 1, seed: kvLen + 1);
                Check(3, kvLen, 8, 2, 80, causal: true, offset: kvLen - 3, seed: kvLen + 2);
            }
        });
    }

    [Fact]
    public void NoVisibleKeyIsNaNAndNaNKeyPropagates()
    {
        var rng = new Random(3);
        int kv = 10, heads = 4, kvHeads = 2, d = 16;
        float[] q = TestUtil.Rand(rng, heads * d);
        Half[] k = ToHalf(TestUtil.Rand(rng, kv * kvHeads * d)), v = ToHalf(TestUtil.Rand(rng, kv * kvHeads * d));
        var o = new float[heads * d];
        Attention.ForwardF16Kv(o, q, k, v, 1, kv, heads, kvHeads, d, 0.25f, causal: true, queryOffset: -1);   // sees nothing
        Assert.All(o, x => Assert.True(float.IsNaN(x)));
        k[(6 * kvHeads + 1) * d + 3] = Half.NaN;   // key 6, kv head 1 → query heads 2 and 3
        Attention.ForwardF16Kv(o, q, k, v, 1, kv, heads, kvHeads, d, 0.25f, causal: true, queryOffset: 9);
        for (int h = 0; h < heads; h++) Assert.Equal(h >= 2, float.IsNaN(o[h * d]));
        Attention.ForwardF16Kv(o, q, k, v, 1, kv, heads, kvHeads, d, 0.25f, causal: true, queryOffset: 5);   // key 6 not visible
        Assert.All(o, x => Assert.True(float.IsFinite(x)));
    }

    [Fact]
    public void ShortSpansAreRejected()
    {
        var o = new float[16];
        Assert.Throws<ArgumentException>(() => Attention.ForwardF16Kv(o, new float[16], new Half[7], new Half[8], 1, 1, 2, 1, 8, 1f, true, 0));
        Assert.Throws<ArgumentException>(() => Attention.ForwardF16Kv(o, new float[16], new Half[16], new Half[16], 1, 1, 3, 2, 8, 1f, true, 0));
    }

    [Theory]
    [InlineData(1)] [InlineData(2)] [InlineData(3)]
    public void DecodeAndPrefillAllocateNothing(int threads)
    {
        TestUtil.With(Simd.Native, threads, () =>
        {
            var rng = new Random(4);
            int kv = 700, heads = 8, kvHeads = 2, d = 64, t = 9;
            float[] q = TestUtil.Rand(rng, t * heads * d);
            Half[] k = ToHalf(TestUtil.Rand(rng, kv * kvHeads * d)), v = ToHalf(TestUtil.Rand(rng, kv * kvHeads * d));
            var o = new float[t * heads * d];
            void Run()
            {
                Attention.ForwardF16Kv(o, q, k, v, 1, kv, heads, kvHeads, d, 0.125f, true, kv - 1);
                Attention.ForwardF16Kv(o, q, k, v, t, kv, heads, kvHeads, d, 0.125f, true, kv - t);
            }
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (sw.ElapsedMilliseconds < 500) Run();   // scratch, workers, tiered JIT
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 3; i++) Run();
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        });
    }
}
