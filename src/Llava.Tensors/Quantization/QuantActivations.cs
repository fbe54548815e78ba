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
/// <item>Block32 (for Q4_0, Q8_0): per 32 values d = amax/127, q = round-to-even(x/d), and c = d·Σq (the
/// offset term of Q4_0's "q − 8").</item>
/// <item>Block256 (for K-quants): per 256 values d = amax/127, q as above, and Σq per 16 values (Q8_K's bsums).</item>
/// </list>
/// A block holding NaN or ±Inf gets d = NaN, so every output that uses it is NaN (the integer path cannot carry
/// infinities; ggml's own Q8 activations turn Inf into NaN too).
/// </summary>
internal unsafe struct QuantActivations
{
    public sbyte* Qs; public float* D; public float* C; public short* BSums; public int K;

    public static long Bytes(int k, bool k256) => k + (k256 ? k / 256 * 4 + k / 16 * 2 : k / 32 * 8) + 64;

    public static QuantActivations Create(byte* buf, int k, bool k256)
    {
        var a = new QuantActivations { K = k, Qs = (sbyte*)buf };
        byte* p = buf + ((k + 31) & ~31);
        if (k256) { a.D = (float*)p; a.BSums = (short*)(p + k / 256 * 4); }
        else { a.D = (float*)p; a.C = (float*)(p + k / 32 * 4); }
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
                C[b] = d * s;
            }
        }
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
