// Contract: f32 activations → 8-bit blocks for integer dot products (32-blocks for Q4_0/Q8_0, 256-blocks with 16-sums for K-quants); SIMD + scalar twin, bit-identical.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors.Quantization;

/// <summary>Per-thread pinned byte buffers for the quantized kernels (kept apart from <see cref="Scratch"/>'s f32 slots).</summary>
internal static unsafe class QuantScratch
{
    [ThreadStatic] static byte[]?[]? slots;

    /// <summary>A 64-byte aligned pointer to at least <paramref name="bytes"/> bytes, valid until the next call with the same slot on this thread.</summary>
    public static byte* Get(int slot, long bytes)
    {
        var s = slots ??= new byte[2][];
        var b = s[slot];
        if (b == null || b.Length < bytes + 64)
        {
            long size = Math.Max(bytes + 64, b == null ? 0 : Math.Min(int.MaxValue / 2, b.Length) * 2L);
            s[slot] = b = GC.AllocateUninitializedArray<byte>((int)Math.Min(int.MaxValue, (size + 63) & ~63L), pinned: true);
        }
        byte* p = (byte*)Unsafe.AsPointer(ref b[0]);
        return (byte*)(((nint)p + 63) & ~(nint)63);
    }
}

/// <summary>
/// Quantized activations. Our own layout (not ggml's Q8_0/Q8_K bytes, which are never stored): int8 quants plus
/// f32 scales (ggml rounds the Q8_0 activation scale to fp16; f32 is more accurate and free here).
/// <list type="bullet">
/// <item>Block32 (for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): per 32 values d = amax/127, q = round-to-even(x/d), S = Σq and
/// c = d·S (the offset / min term). For the SIMD kernels, every pair of blocks (2p, 2p+1) is also stored
/// "nibble-interleaved" (<see cref="QsP"/>: a[2p][0..15], a[2p+1][0..15], a[2p][16..31], a[2p+1][16..31], matching
/// one 256-bit load of both blocks' packed nibbles), with per-pair lane vectors: <see cref="DP"/> = d per int32
/// lane (4 lanes per block), <see cref="O8"/>/<see cref="O16"/> = 8·S / 16·S in the block's first lane, and
/// <see cref="CP"/> = c/4 per lane.</item>
/// <item>Block256 (for K-quants): per 256 values d = amax/127, q as above, and Σq per 16 values (Q8_K's bsums).</item>
/// </list>
/// A block holding NaN or ±Inf gets d = NaN, so every output that uses it is NaN (the integer path cannot carry
/// infinities; ggml's own Q8 activations turn Inf into NaN too).
/// </summary>
internal unsafe struct QuantActivations
{
    public sbyte* Qs; public float* D; public float* C; public int* S; public short* BSums; public int K;
    public sbyte* QsP; public float* DP; public float* CP; public int* O8; public int* O16;

    public static long Bytes(int k, bool k256) => k256
        ? k + k / 256 * 4 + k / 16 * 2 + 128
        : 2L * k + k / 32 * 12 + (k / 64) * 128 + 256;

    public static QuantActivations Create(byte* buf, int k, bool k256)
    {
        var a = new QuantActivations { K = k, Qs = (sbyte*)buf };
        byte* p = buf + ((k + 63) & ~63);
        if (k256) { a.D = (float*)p; a.BSums = (short*)(p + ((k / 256 * 4 + 31) & ~31)); }
        else
        {
            int nb = k / 32, np = nb / 2;
            a.QsP = (sbyte*)p; p += (np * 64 + 63) & ~63;
            a.DP = (float*)p; p += np * 32;
            a.CP = (float*)p; p += np * 32;
            a.O8 = (int*)p; p += np * 32;
            a.O16 = (int*)p; p += np * 32;
            a.D = (float*)p; p += nb * 4;
            a.C = (float*)p; p += nb * 4;
            a.S = (int*)p;
        }
        return a;
    }

    public void Quantize(float* x, bool k256, bool simd)
    {
        int bs = k256 ? 256 : 32;
        for (int b = 0; b < K / bs; b++)
        {
            float* xb = x + b * bs;
            sbyte* q = Qs + b * bs;
            float amax = simd && Vector256.IsHardwareAccelerated ? AbsMax256(xb, bs) : AbsMaxScalar(xb, bs);
            float d = amax / 127f, id = amax > 0 ? 127f / amax : 0f;
            if (!float.IsFinite(amax)) { d = float.NaN; id = 0; }
            if (simd && Vector256.IsHardwareAccelerated) Round256(xb, q, bs, id);
            else for (int i = 0; i < bs; i++) q[i] = (sbyte)(int)MathF.Round(xb[i] * id);
            D[b] = d;
            if (k256)
                for (int g = 0; g < 16; g++)
                {
                    int s = 0;
                    for (int i = 0; i < 16; i++) s += q[g * 16 + i];
                    BSums[b * 16 + g] = (short)s;
                }
            else
            {
                int s = 0;
                for (int i = 0; i < 32; i++) s += q[i];
                S[b] = s;
                C[b] = d * s;
            }
        }
        if (!k256)
            for (int p = 0; p < K / 64; p++)
            {
                sbyte* src = Qs + 64 * p; sbyte* dst = QsP + 64 * p;
                for (int i = 0; i < 16; i++)
                {
                    dst[i] = src[i]; dst[16 + i] = src[32 + i];
                    dst[32 + i] = src[16 + i]; dst[48 + i] = src[48 + i];
                }
                for (int h = 0; h < 2; h++)
                {
                    int blk = 2 * p + h;
                    for (int l = 0; l < 4; l++)
                    {
                        DP[8 * p + 4 * h + l] = D[blk];
                        CP[8 * p + 4 * h + l] = C[blk] * 0.25f;   // exact (power of two)
                        O8[8 * p + 4 * h + l] = l == 0 ? 8 * S[blk] : 0;
                        O16[8 * p + 4 * h + l] = l == 0 ? 16 * S[blk] : 0;
                    }
                }
            }
    }

    /// <summary>
    /// One block of <see cref="Quantize"/> on its own (same amax, same d, same rounding, so the same q and d bit for
    /// bit): the prefill GEMM (<see cref="QuantRows"/>) quantizes its token rows through this. Returns d.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float QuantizeBlock(float* xb, sbyte* q, int bs, bool simd)
    {
        float amax = simd && Vector256.IsHardwareAccelerated ? AbsMax256(xb, bs) : AbsMaxScalar(xb, bs);
        float d = amax / 127f, id = amax > 0 ? 127f / amax : 0f;
        if (!float.IsFinite(amax)) { d = float.NaN; id = 0; }
        if (simd && Vector256.IsHardwareAccelerated) Round256(xb, q, bs, id);
        else for (int i = 0; i < bs; i++) q[i] = (sbyte)(int)MathF.Round(xb[i] * id);
        return d;
    }

    // max |x|, or +Inf / NaN when the block is not all finite (NaN compares false, so it is detected separately).
    static float AbsMaxScalar(float* x, int n)
    {
        float m = 0;
        for (int i = 0; i < n; i++)
        {
            float a = MathF.Abs(x[i]);
            if (!(a <= float.MaxValue)) return float.NaN;
            if (a > m) m = a;
        }
        return m;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float AbsMax256(float* x, int n)
    {
        Vector256<float> m = Vector256<float>.Zero, fin = Vector256<float>.AllBitsSet;
        for (int i = 0; i < n; i += 8)
        {
            var a = Vector256.Abs(Vector256.Load(x + i));
            fin &= Vector256.LessThanOrEqual(a, Vector256.Create(float.MaxValue)).AsSingle();   // false for NaN and Inf
            m = Vector256.Max(m, a);
        }
        if (fin.AsInt32() != Vector256<int>.AllBitsSet) return float.NaN;
        return Vector128.Max(m.GetLower(), m.GetUpper()) is var h ? MathF.Max(MathF.Max(h[0], h[1]), MathF.Max(h[2], h[3])) : 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Round256(float* x, sbyte* q, int n, float id)
    {
        var s = Vector256.Create(id);
        for (int i = 0; i < n; i += 32)
        {
            // Round to nearest even, like MathF.Round in the scalar twin; |x·id| ≤ 127 so the narrowing never saturates.
            var a = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + i) * s));
            var b = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + i + 8) * s));
            var c = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + i + 16) * s));
            var d = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + i + 24) * s));
            var ab = Vector256.Narrow(a, b); var cd = Vector256.Narrow(c, d);
            Vector256.Store(Vector256.Narrow(ab, cd), q + i);
        }
    }
}
