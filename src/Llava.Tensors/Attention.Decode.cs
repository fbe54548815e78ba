// Contract: single-query (decode) attention over a long f32 (or f16, widened 4 rows at a time) KV cache: key blocks streamed as whole rows, scores 4 keys at a time, block-local softmax, Σ p·V, partials merged; parallel over key blocks, allocation-free.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
namespace Llava.Tensors;

public static unsafe partial class Attention
{
    /// <summary>tokens == 1, split over blocks of keys (flash-decoding): an item reads the whole K rows (all kv heads,
    /// contiguous in the (kvLen, kvHeads, headDim) cache) of its key block, then the whole V rows, so memory is
    /// streamed sequentially instead of with a kvHeads·headDim stride per head. Per head and block it keeps
    /// (max, Σexp, Σ p·V) partials, merged on the calling thread. Scores take 4 keys per iteration (independent
    /// accumulators, one transposing reduction per 4 keys); Σ p·V takes 4 V rows per load/store of the accumulator.
    /// The key blocking depends only on the visible length, so results do not depend on the thread count.</summary>
    static void DecodeForward(float* o, float* q, float* k, float* v, int kvLen, int heads, int kvHeads, int headDim, float scale, bool causal, int queryOffset,
                              ushort* kh = null, ushort* vh = null)
    {
        int n = causal ? Math.Clamp(queryOffset + 1, 0, kvLen) : kvLen;
        int d = headDim;
        if (n == 0 || d == 0)
        {
            new Span<float>(o, heads * d).Fill(float.NaN);   // no visible key: 0/0, like torch's softmax over an all -inf row
            return;
        }
        int kb = Math.Clamp((n / 8 + 15) & ~15, 64, 256);
        int blocks = (n + kb - 1) / kb;
        int part = d + 2;   // per (block, head): max, sum, acc[d]
        float[] pBuf = Scratch.Get(3, blocks * heads * part);
        fixed (float* partials = pBuf)
        {
            var job = new DecodeJob
            {
                Q = q, K = k, V = v, Kh = kh, Vh = vh, P = partials, N = n, KeyBlock = kb, Heads = heads, KvHeads = kvHeads, HeadDim = d,
                Group = heads / kvHeads, Scale = scale,
            };
            long perItem = 2L * kb * kvHeads * d;
            Workers.Run(ref job, blocks, (int)Math.Clamp(65536 / perItem, 1, int.MaxValue));
            // Merge: out = Σ_b e^(m_b − M)·acc_b / Σ_b e^(m_b − M)·l_b.
            for (int h = 0; h < heads; h++)
            {
                float m = float.NegativeInfinity;
                for (int b = 0; b < blocks; b++)
                {
                    float mb = partials[((long)b * heads + h) * part];
                    m = float.IsNaN(mb) || float.IsNaN(m) ? float.NaN : MathF.Max(m, mb);
                }
                float* dst = o + (long)h * d;
                new Span<float>(dst, d).Clear();
                float l = 0;
                for (int b = 0; b < blocks; b++)
                {
                    float* pb = partials + ((long)b * heads + h) * part;
                    float w = MathF.Exp(pb[0] - m);
                    l = MathF.FusedMultiplyAdd(w, pb[1], l);
                    VecOps.Axpy(dst, w, pb + 2, d);
                }
                VecOps.Scale(dst, 1.0f / l, d);
            }
        }
    }

    struct DecodeJob : IParallelJob
    {
        public float* Q, K, V, P;
        public ushort* Kh, Vh;   // f16 cache instead of K, V (null for f32): 4 rows of one kv head at a time are widened into scratch
        public int N, KeyBlock, Heads, KvHeads, HeadDim, Group;
        public float Scale;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            int d = HeadDim, kb = KeyBlock, heads = Heads, group = Group, part = d + 2;
            // f16 cache without key sharing (MHA): each widened row is used once, so widen in registers (Dot4H/Axpy4H)
            // instead of through scratch. Vector256 only (those twins mirror Dot4/Axpy4's Vector256 paths bit for bit).
            bool fused = Kh != null && group == 1 && Simd.Width == 256 && d >= 8;
            long stride = (long)KvHeads * d;
            float[] sBuf = Scratch.Get(1, heads * kb);
            float[] cBuf = Kh != null ? Scratch.Get(2, 4 * Math.Max(1, d)) : sBuf;
            fixed (float* s = sBuf) fixed (float* conv = cBuf)
                for (int item = start; item < end; item++)
                {
                    int j0 = item * kb, cnt = Math.Min(N - j0, kb);
                    float* kRow = K + j0 * stride, vRow = V + j0 * stride;
                    ushort* khRow = Kh + j0 * stride, vhRow = Vh + j0 * stride;
                    // Scores s[h, j] for the block: 4 whole K rows per step, every head of a kv group reusing its slices from L1.
                    int j = 0;
                    for (; j + 4 <= cnt; j += 4)
                    {
                        float* k0 = kRow + j * stride;
                        for (int g = 0, h = 0; g < KvHeads; g++)
                        {
                            float* kg = k0 + g * d;
                            long ks = stride;
                            if (fused)
                            {
                                (Dot4H(Q + (long)h * d, khRow + j * stride + g * d, stride, d) * Scale).Store(s + (long)h * kb + j);
                                h++;
                                continue;
                            }
                            if (Kh != null) { Widen4(khRow + j * stride + g * d, stride, conv, d); kg = conv; ks = d; }
                            for (int r = 0; r < group; r++, h++)
                                (Dot4(Q + (long)h * d, kg, kg + ks, kg + 2 * ks, kg + 3 * ks, d) * Scale).Store(s + (long)h * kb + j);
                        }
                    }
                    if (Kh == null)
                        for (; j < cnt; j++)
                            for (int h = 0; h < heads; h++) s[(long)h * kb + j] = VecOps.Dot(Q + (long)h * d, kRow + j * stride + (h / group) * d, d) * Scale;
                    else
                        for (; j < cnt; j++)
                            for (int g = 0, h = 0; g < KvHeads; g++)
                            {
                                DTypeConvert.F16ToF32(khRow + j * stride + g * d, conv, d);
                                for (int r = 0; r < group; r++, h++) s[(long)h * kb + j] = VecOps.Dot(Q + (long)h * d, conv, d) * Scale;
                            }
                    // Local softmax per head.
                    for (int h = 0; h < heads; h++)
                    {
                        float* sh = s + (long)h * kb;
                        float* pb = P + ((long)item * heads + h) * part;
                        float m = VecOps.Max(sh, cnt);   // NaN propagates: exp(x − NaN) = NaN everywhere
                        pb[0] = m;
                        pb[1] = ExpShifted(sh, cnt, m);
                        new Span<float>(pb + 2, d).Clear();
                    }
                    // acc[h] += Σ p·V, 4 whole V rows per step.
                    j = 0;
                    for (; j + 4 <= cnt; j += 4)
                    {
                        float* v0 = vRow + j * stride;
                        for (int g = 0, h = 0; g < KvHeads; g++)
                        {
                            float* vg = v0 + g * d;
                            long vs = stride;
                            if (fused)
                            {
                                float* sh = s + (long)h * kb + j;
                                Axpy4H(P + ((long)item * heads + h) * part + 2, sh[0], sh[1], sh[2], sh[3], vhRow + j * stride + g * d, stride, d);
                                h++;
                                continue;
                            }
                            if (Vh != null) { Widen4(vhRow + j * stride + g * d, stride, conv, d); vg = conv; vs = d; }
                            for (int r = 0; r < group; r++, h++)
                            {
                                float* sh = s + (long)h * kb + j;
                                Axpy4(P + ((long)item * heads + h) * part + 2, sh[0], sh[1], sh[2], sh[3], vg, vg + vs, vg + 2 * vs, vg + 3 * vs, d);
                            }
                        }
                    }
                    if (Vh == null)
                        for (; j < cnt; j++)
                            for (int h = 0; h < heads; h++)
                                VecOps.Axpy(P + ((long)item * heads + h) * part + 2, s[(long)h * kb + j], vRow + j * stride + (h / group) * d, d);
                    else
                        for (; j < cnt; j++)
                            for (int g = 0, h = 0; g < KvHeads; g++)
                            {
                                DTypeConvert.F16ToF32(vhRow + j * stride + g * d, conv, d);
                                for (int r = 0; r < group; r++, h++) VecOps.Axpy(P + ((long)item * heads + h) * part + 2, s[(long)h * kb + j], conv, d);
                            }
                }
        }
    }

    /// <summary>Widens 4 f16 rows of length d (row i at src + i·stride) into dst (4 × d, contiguous).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Widen4(ushort* src, long stride, float* dst, int d)
    {
        DTypeConvert.F16ToF32(src, dst, d);
        DTypeConvert.F16ToF32(src + stride, dst + d, d);
        DTypeConvert.F16ToF32(src + 2 * stride, dst + 2 * d, d);
        DTypeConvert.F16ToF32(src + 3 * stride, dst + 3 * d, d);
    }

    /// <summary><see cref="Dot4"/>'s Vector256 path over 4 f16 rows (row i at k + i·stride) widened in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<float> Dot4H(float* q, ushort* k, long stride, int d)
    {
        ushort* k0 = k, k1 = k + stride, k2 = k + 2 * stride, k3 = k + 3 * stride;
        int i = 0;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (; i + 8 <= d; i += 8)
        {
            var x = Vector256.Load(q + i);
            a0 = Vector256.FusedMultiplyAdd(x, DTypeConvert.HalfToSingle8(k0 + i), a0);
            a1 = Vector256.FusedMultiplyAdd(x, DTypeConvert.HalfToSingle8(k1 + i), a1);
            a2 = Vector256.FusedMultiplyAdd(x, DTypeConvert.HalfToSingle8(k2 + i), a2);
            a3 = Vector256.FusedMultiplyAdd(x, DTypeConvert.HalfToSingle8(k3 + i), a3);
        }
        Vector128<float> r = Reduce4(a0, a1, a2, a3);
        if (i < d)
        {
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (; i < d; i++)
            {
                float x = q[i];
                s0 = MathF.FusedMultiplyAdd(x, H(k0[i]), s0); s1 = MathF.FusedMultiplyAdd(x, H(k1[i]), s1);
                s2 = MathF.FusedMultiplyAdd(x, H(k2[i]), s2); s3 = MathF.FusedMultiplyAdd(x, H(k3[i]), s3);
            }
            r += Vector128.Create(s0, s1, s2, s3);
        }
        return r;
    }

    /// <summary><see cref="Axpy4"/>'s Vector256 path over 4 f16 rows (row i at v + i·stride) widened in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Axpy4H(float* acc, float p0, float p1, float p2, float p3, ushort* v, long stride, int d)
    {
        ushort* v0 = v, v1 = v + stride, v2 = v + 2 * stride, v3 = v + 3 * stride;
        int i = 0;
        Vector256<float> b0 = Vector256.Create(p0), b1 = Vector256.Create(p1), b2 = Vector256.Create(p2), b3 = Vector256.Create(p3);
        for (; i + 8 <= d; i += 8)
        {
            var a = Vector256.FusedMultiplyAdd(b0, DTypeConvert.HalfToSingle8(v0 + i), Vector256.Load(acc + i));
            a = Vector256.FusedMultiplyAdd(b1, DTypeConvert.HalfToSingle8(v1 + i), a);
            a = Vector256.FusedMultiplyAdd(b2, DTypeConvert.HalfToSingle8(v2 + i), a);
            Vector256.FusedMultiplyAdd(b3, DTypeConvert.HalfToSingle8(v3 + i), a).Store(acc + i);
        }
        for (; i < d; i++)
            acc[i] = MathF.FusedMultiplyAdd(p3, H(v3[i]), MathF.FusedMultiplyAdd(p2, H(v2[i]), MathF.FusedMultiplyAdd(p1, H(v1[i]), MathF.FusedMultiplyAdd(p0, H(v0[i]), acc[i]))));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float H(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>[q·k0, q·k1, q·k2, q·k3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<float> Dot4(float* q, float* k0, float* k1, float* k2, float* k3, int d)
    {
        int i = 0;
        Vector128<float> r = default;
        if (Simd.Width >= 512 && d >= 16)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 16 <= d; i += 16)
            {
                var x = Vector512.Load(q + i);
                a0 = Vector512.FusedMultiplyAdd(x, Vector512.Load(k0 + i), a0);
                a1 = Vector512.FusedMultiplyAdd(x, Vector512.Load(k1 + i), a1);
                a2 = Vector512.FusedMultiplyAdd(x, Vector512.Load(k2 + i), a2);
                a3 = Vector512.FusedMultiplyAdd(x, Vector512.Load(k3 + i), a3);
            }
            r = Reduce4(a0.GetLower() + a0.GetUpper(), a1.GetLower() + a1.GetUpper(), a2.GetLower() + a2.GetUpper(), a3.GetLower() + a3.GetUpper());
        }
        else if (Simd.Width >= 256 && d >= 8)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 8 <= d; i += 8)
            {
                var x = Vector256.Load(q + i);
                a0 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k0 + i), a0);
                a1 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k1 + i), a1);
                a2 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k2 + i), a2);
                a3 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k3 + i), a3);
            }
            r = Reduce4(a0, a1, a2, a3);
        }
        if (i < d)
        {
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (; i < d; i++)
            {
                float x = q[i];
                s0 = MathF.FusedMultiplyAdd(x, k0[i], s0); s1 = MathF.FusedMultiplyAdd(x, k1[i], s1);
                s2 = MathF.FusedMultiplyAdd(x, k2[i], s2); s3 = MathF.FusedMultiplyAdd(x, k3[i], s3);
            }
            r += Vector128.Create(s0, s1, s2, s3);
        }
        return r;
    }

    /// <summary>Horizontal sums of four vectors at once: [Σa0, Σa1, Σa2, Σa3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<float> Reduce4(Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3)
    {
        Vector128<float> s0 = a0.GetLower() + a0.GetUpper(), s1 = a1.GetLower() + a1.GetUpper();
        Vector128<float> s2 = a2.GetLower() + a2.GetUpper(), s3 = a3.GetLower() + a3.GetUpper();
        if (!Sse.IsSupported) return Vector128.Create(Vector128.Sum(s0), Vector128.Sum(s1), Vector128.Sum(s2), Vector128.Sum(s3));
        // 4x4 transpose-and-add: u = [s0₀+s0₂, s1₀+s1₂, s0₁+s0₃, s1₁+s1₃], w likewise for s2, s3.
        var u = Sse.UnpackLow(s0, s1) + Sse.UnpackHigh(s0, s1);
        var w = Sse.UnpackLow(s2, s3) + Sse.UnpackHigh(s2, s3);
        return Sse.MoveLowToHigh(u, w) + Sse.MoveHighToLow(w, u);
    }

    /// <summary>acc += p0·v0 + p1·v1 + p2·v2 + p3·v3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Axpy4(float* acc, float p0, float p1, float p2, float p3, float* v0, float* v1, float* v2, float* v3, int d)
    {
        int i = 0;
        if (Simd.Width >= 512)
        {
            Vector512<float> b0 = Vector512.Create(p0), b1 = Vector512.Create(p1), b2 = Vector512.Create(p2), b3 = Vector512.Create(p3);
            for (; i + 16 <= d; i += 16)
            {
                var a = Vector512.FusedMultiplyAdd(b0, Vector512.Load(v0 + i), Vector512.Load(acc + i));
                a = Vector512.FusedMultiplyAdd(b1, Vector512.Load(v1 + i), a);
                a = Vector512.FusedMultiplyAdd(b2, Vector512.Load(v2 + i), a);
                Vector512.FusedMultiplyAdd(b3, Vector512.Load(v3 + i), a).Store(acc + i);
            }
        }
        if (Simd.Width >= 256)
        {
            Vector256<float> b0 = Vector256.Create(p0), b1 = Vector256.Create(p1), b2 = Vector256.Create(p2), b3 = Vector256.Create(p3);
            for (; i + 8 <= d; i += 8)
            {
                var a = Vector256.FusedMultiplyAdd(b0, Vector256.Load(v0 + i), Vector256.Load(acc + i));
                a = Vector256.FusedMultiplyAdd(b1, Vector256.Load(v1 + i), a);
                a = Vector256.FusedMultiplyAdd(b2, Vector256.Load(v2 + i), a);
                Vector256.FusedMultiplyAdd(b3, Vector256.Load(v3 + i), a).Store(acc + i);
            }
        }
        for (; i < d; i++)
            acc[i] = MathF.FusedMultiplyAdd(p3, v3[i], MathF.FusedMultiplyAdd(p2, v2[i], MathF.FusedMultiplyAdd(p1, v1[i], MathF.FusedMultiplyAdd(p0, v0[i], acc[i]))));
    }
}
