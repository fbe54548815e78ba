// Contract: row · activation dot products for quantized weights: AVX2 integer kernels (Q4_0, Q8_0, Q4_K, Q6_K) with scalar twins on the same 8-bit activations.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llava.Tensors.Quantization;

/// <summary>
/// One weight row (a run of blocks) times quantized activations (<see cref="QuantActivations"/>), llama.cpp-style:
/// the weights' unsigned codes go into vpmaddubsw as the unsigned operand against the int8 activations
/// (vpmaddwd then widens to int32 and, for K-quants, applies the 6/8-bit sub-block scales in the same
/// instruction); the code offsets (−8 for Q4_0, −32 for Q6_K) and K-quant mins are folded in afterwards from the
/// activations' block sums. Float work is one FMA per block (per super-block for K-quants).
/// </summary>
internal static unsafe class QuantDot
{
    /// <summary>Types with an integer kernel; the others are dequantized to f32 on the fly.</summary>
    public static bool HasIntegerKernel(GgmlType t) => t is GgmlType.Q4_0 or GgmlType.Q8_0 or GgmlType.Q4_K or GgmlType.Q6_K;
    public static bool UsesK256(GgmlType t) => t is GgmlType.Q4_K or GgmlType.Q6_K;

    public static bool Avx2Usable => Avx2.IsSupported && Fma.IsSupported && Simd.Width >= 256;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot(GgmlType t, byte* row, in QuantActivations a, bool simd) => t switch
    {
        GgmlType.Q4_0 => simd ? Q4_0Avx2(row, a) : Q4_0Scalar(row, a),
        GgmlType.Q8_0 => simd ? Q8_0Avx2(row, a) : Q8_0Scalar(row, a),
        GgmlType.Q4_K => simd ? Q4_KAvx2(row, a) : Q4_KScalar(row, a),
        _ => simd ? Q6_KAvx2(row, a) : Q6_KScalar(row, a),
    };

    static float H(byte* p) => GgmlFp16.ToFloatFast(*(ushort*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float HSum(Vector256<float> v) => Vector256.Sum(v);

    // ---------------- Q4_0: 18-byte blocks {fp16 d, 16 bytes of nibbles}; value = d·(q − 8) ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q4_0Avx2(byte* b, in QuantActivations a)
    {
        int nb = a.K / 32;
        var acc0 = Vector256<float>.Zero; var acc1 = Vector256<float>.Zero;
        var ones = Vector256.Create((short)1); var m4 = Vector128.Create((byte)0x0F);
        float corr = 0;
        sbyte* q8 = a.Qs; float* ad = a.D, ac = a.C;
        int i = 0;
        for (; i + 2 <= nb; i += 2, b += 36, q8 += 64)
        {
            float d0 = H(b), d1 = H(b + 18);
            var r0 = Vector128.Load(b + 2); var r1 = Vector128.Load(b + 20);
            var w0 = Vector256.Create(r0 & m4, (r0.AsUInt16() >> 4).AsByte() & m4);
            var w1 = Vector256.Create(r1 & m4, (r1.AsUInt16() >> 4).AsByte() & m4);
            var p0 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w0, Vector256.Load(q8)), ones);
            var p1 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w1, Vector256.Load(q8 + 32)), ones);
            acc0 = Fma.MultiplyAdd(Vector256.Create(d0 * ad[i]), Avx.ConvertToVector256Single(p0), acc0);
            acc1 = Fma.MultiplyAdd(Vector256.Create(d1 * ad[i + 1]), Avx.ConvertToVector256Single(p1), acc1);
            corr = MathF.FusedMultiplyAdd(d0, ac[i], corr);
            corr = MathF.FusedMultiplyAdd(d1, ac[i + 1], corr);
        }
        for (; i < nb; i++, b += 18, q8 += 32)
        {
            float d0 = H(b);
            var r0 = Vector128.Load(b + 2);
            var w0 = Vector256.Create(r0 & m4, (r0.AsUInt16() >> 4).AsByte() & m4);
            var p0 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w0, Vector256.Load(q8)), ones);
            acc0 = Fma.MultiplyAdd(Vector256.Create(d0 * ad[i]), Avx.ConvertToVector256Single(p0), acc0);
            corr = MathF.FusedMultiplyAdd(d0, ac[i], corr);
        }
        return HSum(acc0 + acc1) - 8 * corr;
    }

    static float Q4_0Scalar(byte* b, in QuantActivations a)
    {
        float s = 0;
        for (int i = 0; i < a.K / 32; i++, b += 18)
        {
            sbyte* q8 = a.Qs + i * 32;
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += (b[2 + j] & 0xF) * q8[j] + (b[2 + j] >> 4) * q8[j + 16];
            float d = H(b);
            s += d * a.D[i] * sum - 8 * d * a.C[i];
        }
        return s;
    }

    // ---------------- Q8_0: 34-byte blocks {fp16 d, 32 int8}; signed × signed via the sign trick ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q8_0Avx2(byte* b, in QuantActivations a)
    {
        int nb = a.K / 32;
        var acc0 = Vector256<float>.Zero; var acc1 = Vector256<float>.Zero;
        var ones = Vector256.Create((short)1);
        sbyte* q8 = a.Qs; float* ad = a.D;
        int i = 0;
        for (; i + 2 <= nb; i += 2, b += 68, q8 += 64)
        {
            var w0 = Vector256.Load((sbyte*)(b + 2)); var w1 = Vector256.Load((sbyte*)(b + 36));
            var p0 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w0), Avx2.Sign(Vector256.Load(q8), w0)), ones);
            var p1 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w1), Avx2.Sign(Vector256.Load(q8 + 32), w1)), ones);
            acc0 = Fma.MultiplyAdd(Vector256.Create(H(b) * ad[i]), Avx.ConvertToVector256Single(p0), acc0);
            acc1 = Fma.MultiplyAdd(Vector256.Create(H(b + 34) * ad[i + 1]), Avx.ConvertToVector256Single(p1), acc1);
        }
        for (; i < nb; i++, b += 34, q8 += 32)
        {
            var w0 = Vector256.Load((sbyte*)(b + 2));
            var p0 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w0), Avx2.Sign(Vector256.Load(q8), w0)), ones);
            acc0 = Fma.MultiplyAdd(Vector256.Create(H(b) * ad[i]), Avx.ConvertToVector256Single(p0), acc0);
        }
        return HSum(acc0 + acc1);
    }

    static float Q8_0Scalar(byte* b, in QuantActivations a)
    {
        float s = 0;
        for (int i = 0; i < a.K / 32; i++, b += 34)
        {
            sbyte* q8 = a.Qs + i * 32;
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += (sbyte)b[2 + j] * q8[j];
            s += H(b) * a.D[i] * sum;
        }
        return s;
    }

    // ---------------- Q4_K: 144-byte super-blocks; value = d·sc_j·q − dmin·m_j over 8 sub-blocks of 32 ----------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void ScalesMinsK4(byte* s, int* sc, int* mn)
    {
        for (int j = 0; j < 4; j++) { sc[j] = s[j] & 63; mn[j] = s[j + 4] & 63; }
        for (int j = 4; j < 8; j++)
        {
            sc[j] = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
            mn[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q4_KAvx2(byte* b, in QuantActivations a)
    {
        int nb = a.K / 256;
        var acc = Vector256<float>.Zero;
        var m4 = Vector256.Create((byte)0x0F);
        float corr = 0;
        int* sc = stackalloc int[8]; int* mn = stackalloc int[8];
        for (int i = 0; i < nb; i++, b += 144)
        {
            sbyte* q8 = a.Qs + i * 256; short* bs = a.BSums + i * 16;
            ScalesMinsK4(b + 4, sc, mn);
            int msum = 0;
            for (int j = 0; j < 8; j++) msum += mn[j] * (bs[2 * j] + bs[2 * j + 1]);
            var sumi = Vector256<int>.Zero;
            byte* q = b + 16;
            for (int c = 0; c < 4; c++, q += 32, q8 += 64)
            {
                var raw = Vector256.Load(q);
                var lo = raw & m4; var hi = (raw.AsUInt16() >> 4).AsByte() & m4;
                var p0 = Avx2.MultiplyAddAdjacent(lo, Vector256.Load(q8));
                var p1 = Avx2.MultiplyAddAdjacent(hi, Vector256.Load(q8 + 32));
                sumi += Avx2.MultiplyAddAdjacent(p0, Vector256.Create((short)sc[2 * c])) + Avx2.MultiplyAddAdjacent(p1, Vector256.Create((short)sc[2 * c + 1]));
            }
            float da = a.D[i];
            acc = Fma.MultiplyAdd(Vector256.Create(H(b) * da), Avx.ConvertToVector256Single(sumi), acc);
            corr = MathF.FusedMultiplyAdd(H(b + 2) * da, msum, corr);
        }
        return HSum(acc) - corr;
    }

    static float Q4_KScalar(byte* b, in QuantActivations a)
    {
        float s = 0;
        int* sc = stackalloc int[8]; int* mn = stackalloc int[8];
        for (int i = 0; i < a.K / 256; i++, b += 144)
        {
            sbyte* q8 = a.Qs + i * 256;
            ScalesMinsK4(b + 4, sc, mn);
            int sumi = 0, msum = 0;
            for (int j = 0; j < 8; j++)
            {
                byte* q = b + 16 + (j / 2) * 32;
                int shift = (j & 1) * 4, part = 0;
                for (int l = 0; l < 32; l++) part += ((q[l] >> shift) & 0xF) * q8[j * 32 + l];
                sumi += sc[j] * part;
                msum += mn[j] * (a.BSums[i * 16 + 2 * j] + a.BSums[i * 16 + 2 * j + 1]);
            }
            s += H(b) * a.D[i] * sumi - H(b + 2) * a.D[i] * msum;
        }
        return s;
    }

    // ---------------- Q6_K: 210-byte super-blocks {ql[128], qh[64], int8 scales[16], fp16 d}; value = d·sc_g·(q − 32) ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q6_KAvx2(byte* b, in QuantActivations a)
    {
        int nb = a.K / 256;
        var acc = Vector256<float>.Zero;
        var m4 = Vector256.Create((byte)0x0F); var m2 = Vector256.Create((byte)0x03);
        float corr = 0;
        for (int i = 0; i < nb; i++, b += 210)
        {
            sbyte* q8 = a.Qs + i * 256; short* bs = a.BSums + i * 16;
            sbyte* sc = (sbyte*)(b + 192);
            int csum = 0;
            for (int g = 0; g < 16; g++) csum += sc[g] * bs[g];
            var sumi = Vector256<int>.Zero;
            for (int n = 0; n < 2; n++)
            {
                byte* ql = b + 64 * n; byte* qh = b + 128 + 32 * n; sbyte* s = sc + 8 * n; sbyte* a8 = q8 + 128 * n;
                var l0 = Vector256.Load(ql); var l1 = Vector256.Load(ql + 32); var h = Vector256.Load(qh).AsUInt16();
                var q1 = (l0 & m4) | ((h.AsByte() & m2).AsUInt16() << 4).AsByte();
                var q2 = (l1 & m4) | (((h >> 2).AsByte() & m2).AsUInt16() << 4).AsByte();
                var q3 = ((l0.AsUInt16() >> 4).AsByte() & m4) | (((h >> 4).AsByte() & m2).AsUInt16() << 4).AsByte();
                var q4 = ((l1.AsUInt16() >> 4).AsByte() & m4) | (((h >> 6).AsByte() & m2).AsUInt16() << 4).AsByte();
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q1, Vector256.Load(a8)), Scales(s[0], s[1]));
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q2, Vector256.Load(a8 + 32)), Scales(s[2], s[3]));
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q3, Vector256.Load(a8 + 64)), Scales(s[4], s[5]));
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q4, Vector256.Load(a8 + 96)), Scales(s[6], s[7]));
            }
            float dd = H(b + 208) * a.D[i];
            acc = Fma.MultiplyAdd(Vector256.Create(dd), Avx.ConvertToVector256Single(sumi), acc);
            corr = MathF.FusedMultiplyAdd(dd, 32 * csum, corr);
        }
        return HSum(acc) - corr;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<short> Scales(sbyte s0, sbyte s1) => Vector256.Create(Vector128.Create((short)s0), Vector128.Create((short)s1));

    static float Q6_KScalar(byte* b, in QuantActivations a)
    {
        float s = 0;
        for (int i = 0; i < a.K / 256; i++, b += 210)
        {
            sbyte* q8 = a.Qs + i * 256; sbyte* sc = (sbyte*)(b + 192);
            int sumi = 0;
            for (int n = 0; n < 2; n++)
            {
                byte* ql = b + 64 * n; byte* qh = b + 128 + 32 * n;
                for (int l = 0; l < 32; l++)
                {
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    int e = 128 * n + l, g = 8 * n + l / 16;
                    sumi += sc[g] * q1 * q8[e] + sc[g + 2] * q2 * q8[e + 32] + sc[g + 4] * q3 * q8[e + 64] + sc[g + 6] * q4 * q8[e + 96];
                }
            }
            s += H(b + 208) * a.D[i] * sumi;
        }
        return s;
    }
}
