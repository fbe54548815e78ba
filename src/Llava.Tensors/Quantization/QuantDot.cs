// Contract: row · activation dot products for every ggml weight block type: AVX2 integer kernels (AVX-VNNI ones in QuantDot.Vnni.cs)
// with scalar twins on the same 8-bit activations; the kernel family is chosen at runtime and can be pinned (Force).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llava.Tensors.Quantization;

/// <summary>
/// One weight row (a run of blocks) times quantized activations (<see cref="QuantActivations"/>), llama.cpp-style:
/// the weights' unsigned codes go into vpmaddubsw as the unsigned operand against the int8 activations
/// (vpmaddwd then widens to int32 and, for K-quants, applies the sub-block scales in the same instruction); code
/// offsets (−8 Q4_0, −16 Q5_0, −4 Q3_K, −32 Q6_K) are subtracted in int32 from the activations' block sums, and
/// mins (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) are folded in afterwards in f32. The 32-element types work on pairs of
/// blocks (one 256-bit load of both blocks' nibbles against the pair-interleaved activations), fp16 scales come
/// from a 65536-entry table (exact, computed once). Float work is one FMA per pair / per super-block.
/// Each AVX2 kernel has a scalar twin computing the same integer sums (tests compare them).
/// </summary>
internal static unsafe partial class QuantDot
{
    /// <summary>Decode kernel family: picked at runtime from the CPU (and <see cref="Simd.Width"/>); tests and the bench pin one with <see cref="Force"/>.</summary>
    internal enum Kernel { Scalar, Avx2, Vnni }

    /// <summary>When set, every decode call uses this family (callers check <see cref="Supported"/> first).</summary>
    internal static Kernel? Force;

    public static Kernel Current => Force ?? (VnniUsable ? Kernel.Vnni : Avx2Usable ? Kernel.Avx2 : Kernel.Scalar);

    public static bool Supported(Kernel k) => k switch
    {
        Kernel.Scalar => true,
        Kernel.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        _ => Avx2.IsSupported && Fma.IsSupported && AvxVnni.IsSupported,
    };

    /// <summary>Types with an integer kernel (all weight block types).</summary>
    public static bool HasIntegerKernel(GgmlType t) => t is GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.Q8_0
        or GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K;
    public static bool UsesK256(GgmlType t) => t is GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K;

    public static bool Avx2Usable => Avx2.IsSupported && Fma.IsSupported && Simd.Width >= 256;

    /// <summary>fp16 → f32 for every bit pattern (GgmlFp16.ToFloatFast, exact for finite values and ±inf).</summary>
    static readonly float* F16 = BuildF16();
    // pshufb controls: [0..7] broadcast int16 j to all 16 lanes (Q4_K/Q5_K); [8..11] int16 2g in the low lane and 2g+1 in the high lane (Q2_K/Q3_K/Q6_K); [12] bit→byte expansion.
    static readonly byte* Ctl = BuildCtl();

    static float* BuildF16()
    {
        var p = (float*)NativeMemory.AlignedAlloc(65536 * 4, 64);
        for (int i = 0; i < 65536; i++) p[i] = GgmlFp16.ToFloatFast((ushort)i);
        return p;
    }

    static byte* BuildCtl()
    {
        var p = (byte*)NativeMemory.AlignedAlloc(13 * 32, 64);
        for (int j = 0; j < 8; j++)
            for (int i = 0; i < 32; i += 2) { p[32 * j + i] = (byte)(2 * j); p[32 * j + i + 1] = (byte)(2 * j + 1); }
        for (int g = 0; g < 4; g++)
            for (int i = 0; i < 32; i += 2)
            {
                int s = i < 16 ? 2 * g : 2 * g + 1;
                p[32 * (8 + g) + i] = (byte)(2 * s); p[32 * (8 + g) + i + 1] = (byte)(2 * s + 1);
            }
        for (int i = 0; i < 32; i++) p[32 * 12 + i] = (byte)((i & 15) / 8 + (i >= 16 ? 2 : 0));
        return p;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot(GgmlType t, byte* row, in QuantActivations a, bool simd) => t switch
    {
        GgmlType.Q4_0 => simd ? Q4_0Avx2(row, a) : Q4_0Scalar(row, a),
        GgmlType.Q4_1 => simd ? Q4_1Avx2(row, a) : Q4_1Scalar(row, a),
        GgmlType.Q5_0 => simd ? Q5_0Avx2(row, a) : Q5_0Scalar(row, a),
        GgmlType.Q5_1 => simd ? Q5_1Avx2(row, a) : Q5_1Scalar(row, a),
        GgmlType.Q8_0 => simd ? Q8_0Avx2(row, a) : Q8_0Scalar(row, a),
        GgmlType.Q2_K => simd ? Q2_KAvx2(row, a) : Q2_KScalar(row, a),
        GgmlType.Q3_K => simd ? Q3_KAvx2(row, a) : Q3_KScalar(row, a),
        GgmlType.Q4_K => simd ? Q4_KAvx2(row, a) : Q4_KScalar(row, a),
        GgmlType.Q5_K => simd ? Q5_KAvx2(row, a) : Q5_KScalar(row, a),
        _ => simd ? Q6_KAvx2(row, a) : Q6_KScalar(row, a),
    };

    /// <summary>y[r] = row r · a (+ bias[r]) for rows [r0, r1). The type switch is hoisted out of the row loop.</summary>
    public static void DotRows(GgmlType t, byte* w, long rowBytes, int r0, int r1, in QuantActivations a, Kernel k, float* y, float* bias)
    {
        if (k == Kernel.Vnni && DotRowsVnni(t, w, rowBytes, r0, r1, a, y, bias)) return;
        bool simd = k != Kernel.Scalar;
        switch (t)
        {
            case GgmlType.Q4_0: if (simd) Rows<Q4_0A>(w, rowBytes, r0, r1, a, y, bias); else Rows<Q4_0S>(w, rowBytes, r0, r1, a, y, bias); break;
            case GgmlType.Q4_1: if (simd) Rows<Q4_1A>(w, rowBytes, r0, r1, a, y, bias); else Rows<Q4_1S>(w, rowBytes, r0, r1, a, y, bias); break;
            case GgmlType.Q5_0: if (simd) Rows<Q5_0A>(w, rowBytes, r0, r1, a, y, bias); else Rows<Q5_0S>(w, rowBytes, r0, r1, a, y, bias); break;
            case GgmlType.Q5_1: if (simd) Rows<Q5_1A>(w, rowBytes, r0, r1, a, y, bias); else Rows<Q5_1S>(w, rowBytes, r0, r1, a, y, bias); break;
            case GgmlType.Q8_0: if (simd) Rows<Q8_0A>(w, rowBytes, r0, r1, a, y, bias); else Rows<Q8_0S>(w, rowBytes, r0, r1, a, y, bias); break;
            case GgmlType.Q2_K: if (simd) Rows<Q2_KA>(w, rowBytes, r0, r1, a, y, bias); else Rows<Q2_KS>(w, rowBytes, r0, r1, a, y, bias); break;
            case GgmlType.Q3_K: if (simd) Rows<Q3_KA>(w, rowBytes, r0, r1, a, y, bias); else Rows<Q3_KS>(w, rowBytes, r0, r1, a, y, bias); break;
            case GgmlType.Q4_K: if (simd) Rows<Q4_KA>(w, rowBytes, r0, r1, a, y, bias); else Rows<Q4_KS>(w, rowBytes, r0, r1, a, y, bias); break;
            case GgmlType.Q5_K: if (simd) Rows<Q5_KA>(w, rowBytes, r0, r1, a, y, bias); else Rows<Q5_KS>(w, rowBytes, r0, r1, a, y, bias); break;
            case GgmlType.Q6_K: if (simd) Rows<Q6_KA>(w, rowBytes, r0, r1, a, y, bias); else Rows<Q6_KS>(w, rowBytes, r0, r1, a, y, bias); break;
            default: throw new NotSupportedException($"no integer kernel for {t}");
        }
    }

    interface IRowDot { float Dot(byte* row, in QuantActivations a); }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Rows<T>(byte* w, long rowBytes, int r0, int r1, in QuantActivations a, float* y, float* bias) where T : struct, IRowDot
    {
        byte* row = w + r0 * rowBytes;
        for (int r = r0; r < r1; r++, row += rowBytes)
        {
            float s = default(T).Dot(row, a);
            y[r] = bias == null ? s : s + bias[r];
        }
    }

    struct Q4_0A : IRowDot { [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Dot(byte* r, in QuantActivations a) => Q4_0Avx2(r, a); }
    struct Q4_0S : IRowDot { public float Dot(byte* r, in QuantActivations a) => Q4_0Scalar(r, a); }
    struct Q4_1A : IRowDot { [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Dot(byte* r, in QuantActivations a) => Q4_1Avx2(r, a); }
    struct Q4_1S : IRowDot { public float Dot(byte* r, in QuantActivations a) => Q4_1Scalar(r, a); }
    struct Q5_0A : IRowDot { [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Dot(byte* r, in QuantActivations a) => Q5_0Avx2(r, a); }
    struct Q5_0S : IRowDot { public float Dot(byte* r, in QuantActivations a) => Q5_0Scalar(r, a); }
    struct Q5_1A : IRowDot { [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Dot(byte* r, in QuantActivations a) => Q5_1Avx2(r, a); }
    struct Q5_1S : IRowDot { public float Dot(byte* r, in QuantActivations a) => Q5_1Scalar(r, a); }
    struct Q8_0A : IRowDot { [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Dot(byte* r, in QuantActivations a) => Q8_0Avx2(r, a); }
    struct Q8_0S : IRowDot { public float Dot(byte* r, in QuantActivations a) => Q8_0Scalar(r, a); }
    struct Q2_KA : IRowDot { [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Dot(byte* r, in QuantActivations a) => Q2_KAvx2(r, a); }
    struct Q2_KS : IRowDot { public float Dot(byte* r, in QuantActivations a) => Q2_KScalar(r, a); }
    struct Q3_KA : IRowDot { [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Dot(byte* r, in QuantActivations a) => Q3_KAvx2(r, a); }
    struct Q3_KS : IRowDot { public float Dot(byte* r, in QuantActivations a) => Q3_KScalar(r, a); }
    struct Q4_KA : IRowDot { [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Dot(byte* r, in QuantActivations a) => Q4_KAvx2(r, a); }
    struct Q4_KS : IRowDot { public float Dot(byte* r, in QuantActivations a) => Q4_KScalar(r, a); }
    struct Q5_KA : IRowDot { [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Dot(byte* r, in QuantActivations a) => Q5_KAvx2(r, a); }
    struct Q5_KS : IRowDot { public float Dot(byte* r, in QuantActivations a) => Q5_KScalar(r, a); }
    struct Q6_KA : IRowDot { [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Dot(byte* r, in QuantActivations a) => Q6_KAvx2(r, a); }
    struct Q6_KS : IRowDot { public float Dot(byte* r, in QuantActivations a) => Q6_KScalar(r, a); }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float H(byte* p) => F16[*(ushort*)p];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float H(float* lut, byte* p) => lut[*(ushort*)p];

    /// <summary>[h(p0) ×4, h(p1) ×4]: the per-lane scale of a block pair.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> PairScale(float* lut, byte* p0, byte* p1, Vector256<int> pidx)
    {
        var v = Sse.UnpackLow(Vector128.CreateScalarUnsafe(lut[*(ushort*)p0]), Vector128.CreateScalarUnsafe(lut[*(ushort*)p1]));
        return Avx2.PermuteVar8x32(v.ToVector256Unsafe(), pidx);
    }

    /// <summary>Both blocks' 16 nibble bytes as one vector: low nibbles = elements 0..15, high = 16..31 of each block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<byte> Load2x16(byte* p0, byte* p1) => Vector256.Create(Vector128.Load(p0), Vector128.Load(p1));

    /// <summary>32 bits → 32 bytes, 0xFF where the bit is set (bit j → byte j).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<byte> BitsToBytes(uint x, Vector256<byte> ctl, Vector256<byte> notBit)
    {
        var v = Avx2.Shuffle(Vector256.Create(x).AsByte(), ctl) | notBit;
        return Avx2.CompareEqual(v, Vector256<byte>.AllBitsSet);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int HSumI(Vector256<int> v)
    {
        var s = v.GetLower() + v.GetUpper();
        s += Sse2.Shuffle(s, 0b01_00_11_10);
        s += Sse2.Shuffle(s, 0b10_11_00_01);
        return s.ToScalar();
    }

    // ---------------- Q4_0: 18-byte blocks {fp16 d, 16 bytes of nibbles}; value = d·(q − 8) ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q4_0Avx2(byte* b, in QuantActivations a)
    {
        int nb = a.K >> 5, np = nb >> 1;
        float* lut = F16;
        var m4 = Vector256.Create((byte)0x0F); var ones = Vector256.Create((short)1); var pidx = Vector256.Create(0, 0, 0, 0, 1, 1, 1, 1);
        Vector256<float> acc0 = default, acc1 = default;
        sbyte* q = a.QsP; float* dp = a.DP; int* o = a.O8;
        int p = 0;
        for (; p + 2 <= np; p += 2, b += 72, q += 128, dp += 16, o += 16)
        {
            var r0 = Load2x16(b + 2, b + 20);
            var s0 = Avx2.MultiplyAddAdjacent(r0 & m4, Vector256.Load(q)) + Avx2.MultiplyAddAdjacent((r0.AsUInt16() >> 4).AsByte() & m4, Vector256.Load(q + 32));
            var r1 = Load2x16(b + 38, b + 56);
            var s1 = Avx2.MultiplyAddAdjacent(r1 & m4, Vector256.Load(q + 64)) + Avx2.MultiplyAddAdjacent((r1.AsUInt16() >> 4).AsByte() & m4, Vector256.Load(q + 96));
            var p0 = Avx2.MultiplyAddAdjacent(s0, ones) - Vector256.Load(o);
            var p1 = Avx2.MultiplyAddAdjacent(s1, ones) - Vector256.Load(o + 8);
            acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p0), PairScale(lut, b, b + 18, pidx) * Vector256.Load(dp), acc0);
            acc1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p1), PairScale(lut, b + 36, b + 54, pidx) * Vector256.Load(dp + 8), acc1);
        }
        if (p < np)
        {
            var r0 = Load2x16(b + 2, b + 20);
            var s0 = Avx2.MultiplyAddAdjacent(r0 & m4, Vector256.Load(q)) + Avx2.MultiplyAddAdjacent((r0.AsUInt16() >> 4).AsByte() & m4, Vector256.Load(q + 32));
            var p0 = Avx2.MultiplyAddAdjacent(s0, ones) - Vector256.Load(o);
            acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p0), PairScale(lut, b, b + 18, pidx) * Vector256.Load(dp), acc0);
            b += 36;
        }
        float s = Vector256.Sum(acc0 + acc1);
        if ((nb & 1) != 0)
        {
            int i = nb - 1;
            var r = Vector128.Load(b + 2);
            var w = Vector256.Create(r, (r.AsUInt16() >> 4).AsByte()) & m4;
            int sum = HSumI(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w, Vector256.Load(a.Qs + 32 * i)), ones));
            s += lut[*(ushort*)b] * a.D[i] * (sum - 8 * a.S[i]);
        }
        return s;
    }

    static float Q4_0Scalar(byte* b, in QuantActivations a)
    {
        float s = 0;
        for (int i = 0; i < a.K / 32; i++, b += 18)
        {
            sbyte* q8 = a.Qs + i * 32;
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += (b[2 + j] & 0xF) * q8[j] + (b[2 + j] >> 4) * q8[j + 16];
            s += H(b) * a.D[i] * (sum - 8 * a.S[i]);
        }
        return s;
    }

    // ---------------- Q4_1: 20-byte blocks {fp16 d, fp16 m, 16 bytes of nibbles}; value = d·q + m ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q4_1Avx2(byte* b, in QuantActivations a)
    {
        int nb = a.K >> 5, np = nb >> 1;
        float* lut = F16;
        var m4 = Vector256.Create((byte)0x0F); var ones = Vector256.Create((short)1); var pidx = Vector256.Create(0, 0, 0, 0, 1, 1, 1, 1);
        Vector256<float> acc = default, accm = default;
        sbyte* q = a.QsP; float* dp = a.DP; float* cp = a.CP;
        for (int p = 0; p < np; p++, b += 40, q += 64, dp += 8, cp += 8)
        {
            var r0 = Load2x16(b + 4, b + 24);
            var s0 = Avx2.MultiplyAddAdjacent(r0 & m4, Vector256.Load(q)) + Avx2.MultiplyAddAdjacent((r0.AsUInt16() >> 4).AsByte() & m4, Vector256.Load(q + 32));
            var p0 = Avx2.MultiplyAddAdjacent(s0, ones);
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p0), PairScale(lut, b, b + 20, pidx) * Vector256.Load(dp), acc);
            accm = Fma.MultiplyAdd(PairScale(lut, b + 2, b + 22, pidx), Vector256.Load(cp), accm);
        }
        float s = Vector256.Sum(acc + accm);
        if ((nb & 1) != 0)
        {
            int i = nb - 1;
            var r = Vector128.Load(b + 4);
            var w = Vector256.Create(r, (r.AsUInt16() >> 4).AsByte()) & m4;
            int sum = HSumI(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w, Vector256.Load(a.Qs + 32 * i)), ones));
            s += lut[*(ushort*)b] * a.D[i] * sum + lut[*(ushort*)(b + 2)] * a.C[i];
        }
        return s;
    }

    static float Q4_1Scalar(byte* b, in QuantActivations a)
    {
        float s = 0;
        for (int i = 0; i < a.K / 32; i++, b += 20)
        {
            sbyte* q8 = a.Qs + i * 32;
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += (b[4 + j] & 0xF) * q8[j] + (b[4 + j] >> 4) * q8[j + 16];
            s += H(b) * a.D[i] * sum + H(b + 2) * a.C[i];
        }
        return s;
    }

    // ---------------- Q5_0: 22-byte blocks {fp16 d, u32 qh, 16 bytes of nibbles}; value = d·((q | h<<4) − 16) ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q5_0Avx2(byte* b, in QuantActivations a)
    {
        int nb = a.K >> 5, np = nb >> 1;
        float* lut = F16;
        var m4 = Vector256.Create((byte)0x0F); var ones = Vector256.Create((short)1); var pidx = Vector256.Create(0, 0, 0, 0, 1, 1, 1, 1);
        var b16 = Vector256.Create((byte)0x10); var ctl = Vector256.Load(Ctl + 32 * 12); var notBit = Vector256.Create(0x7FBFDFEFF7FBFDFEul).AsByte();
        Vector256<float> acc = default;
        sbyte* q = a.QsP; float* dp = a.DP; int* o = a.O16;
        for (int p = 0; p < np; p++, b += 44, q += 64, dp += 8, o += 8)
        {
            uint h0 = *(uint*)(b + 2), h1 = *(uint*)(b + 24);
            var hl = BitsToBytes((h0 & 0xFFFF) | (h1 << 16), ctl, notBit) & b16;
            var hh = BitsToBytes((h0 >> 16) | (h1 & 0xFFFF0000u), ctl, notBit) & b16;
            var r0 = Load2x16(b + 6, b + 28);
            var s0 = Avx2.MultiplyAddAdjacent((r0 & m4) | hl, Vector256.Load(q)) + Avx2.MultiplyAddAdjacent(((r0.AsUInt16() >> 4).AsByte() & m4) | hh, Vector256.Load(q + 32));
            var p0 = Avx2.MultiplyAddAdjacent(s0, ones) - Vector256.Load(o);
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p0), PairScale(lut, b, b + 22, pidx) * Vector256.Load(dp), acc);
        }
        float s = Vector256.Sum(acc);
        if ((nb & 1) != 0)
        {
            int i = nb - 1;
            var r = Vector128.Load(b + 6);
            var w = (Vector256.Create(r, (r.AsUInt16() >> 4).AsByte()) & m4) | (BitsToBytes(*(uint*)(b + 2), ctl, notBit) & b16);
            int sum = HSumI(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w, Vector256.Load(a.Qs + 32 * i)), ones));
            s += lut[*(ushort*)b] * a.D[i] * (sum - 16 * a.S[i]);
        }
        return s;
    }

    static float Q5_0Scalar(byte* b, in QuantActivations a)
    {
        float s = 0;
        for (int i = 0; i < a.K / 32; i++, b += 22)
        {
            sbyte* q8 = a.Qs + i * 32;
            uint qh = *(uint*)(b + 2);
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += ((b[6 + j] & 0xF) | (int)((qh >> j) & 1) << 4) * q8[j] + ((b[6 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) * q8[j + 16];
            s += H(b) * a.D[i] * (sum - 16 * a.S[i]);
        }
        return s;
    }

    // ---------------- Q5_1: 24-byte blocks {fp16 d, fp16 m, u32 qh, 16 bytes of nibbles}; value = d·(q | h<<4) + m ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q5_1Avx2(byte* b, in QuantActivations a)
    {
        int nb = a.K >> 5, np = nb >> 1;
        float* lut = F16;
        var m4 = Vector256.Create((byte)0x0F); var ones = Vector256.Create((short)1); var pidx = Vector256.Create(0, 0, 0, 0, 1, 1, 1, 1);
        var b16 = Vector256.Create((byte)0x10); var ctl = Vector256.Load(Ctl + 32 * 12); var notBit = Vector256.Create(0x7FBFDFEFF7FBFDFEul).AsByte();
        Vector256<float> acc = default, accm = default;
        sbyte* q = a.QsP; float* dp = a.DP; float* cp = a.CP;
        for (int p = 0; p < np; p++, b += 48, q += 64, dp += 8, cp += 8)
        {
            uint h0 = *(uint*)(b + 4), h1 = *(uint*)(b + 28);
            var hl = BitsToBytes((h0 & 0xFFFF) | (h1 << 16), ctl, notBit) & b16;
            var hh = BitsToBytes((h0 >> 16) | (h1 & 0xFFFF0000u), ctl, notBit) & b16;
            var r0 = Load2x16(b + 8, b + 32);
            var s0 = Avx2.MultiplyAddAdjacent((r0 & m4) | hl, Vector256.Load(q)) + Avx2.MultiplyAddAdjacent(((r0.AsUInt16() >> 4).AsByte() & m4) | hh, Vector256.Load(q + 32));
            var p0 = Avx2.MultiplyAddAdjacent(s0, ones);
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p0), PairScale(lut, b, b + 24, pidx) * Vector256.Load(dp), acc);
            accm = Fma.MultiplyAdd(PairScale(lut, b + 2, b + 26, pidx), Vector256.Load(cp), accm);
        }
        float s = Vector256.Sum(acc + accm);
        if ((nb & 1) != 0)
        {
            int i = nb - 1;
            var r = Vector128.Load(b + 8);
            var w = (Vector256.Create(r, (r.AsUInt16() >> 4).AsByte()) & m4) | (BitsToBytes(*(uint*)(b + 4), ctl, notBit) & b16);
            int sum = HSumI(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w, Vector256.Load(a.Qs + 32 * i)), ones));
            s += lut[*(ushort*)b] * a.D[i] * sum + lut[*(ushort*)(b + 2)] * a.C[i];
        }
        return s;
    }

    static float Q5_1Scalar(byte* b, in QuantActivations a)
    {
        float s = 0;
        for (int i = 0; i < a.K / 32; i++, b += 24)
        {
            sbyte* q8 = a.Qs + i * 32;
            uint qh = *(uint*)(b + 4);
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += ((b[8 + j] & 0xF) | (int)((qh >> j) & 1) << 4) * q8[j] + ((b[8 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) * q8[j + 16];
            s += H(b) * a.D[i] * sum + H(b + 2) * a.C[i];
        }
        return s;
    }

    // ---------------- Q8_0: 34-byte blocks {fp16 d, 32 int8}; signed × signed via the sign trick ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q8_0Avx2(byte* b, in QuantActivations a)
    {
        int nb = a.K >> 5;
        float* lut = F16;
        Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        var ones = Vector256.Create((short)1);
        sbyte* q8 = a.Qs; float* ad = a.D;
        int i = 0;
        for (; i + 4 <= nb; i += 4, b += 136, q8 += 128)
        {
            var w0 = Vector256.Load((sbyte*)(b + 2)); var w1 = Vector256.Load((sbyte*)(b + 36));
            var w2 = Vector256.Load((sbyte*)(b + 70)); var w3 = Vector256.Load((sbyte*)(b + 104));
            var p0 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w0), Avx2.Sign(Vector256.Load(q8), w0)), ones);
            var p1 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w1), Avx2.Sign(Vector256.Load(q8 + 32), w1)), ones);
            var p2 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w2), Avx2.Sign(Vector256.Load(q8 + 64), w2)), ones);
            var p3 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w3), Avx2.Sign(Vector256.Load(q8 + 96), w3)), ones);
            acc0 = Fma.MultiplyAdd(Vector256.Create(H(lut, b) * ad[i]), Avx.ConvertToVector256Single(p0), acc0);
            acc1 = Fma.MultiplyAdd(Vector256.Create(H(lut, b + 34) * ad[i + 1]), Avx.ConvertToVector256Single(p1), acc1);
            acc2 = Fma.MultiplyAdd(Vector256.Create(H(lut, b + 68) * ad[i + 2]), Avx.ConvertToVector256Single(p2), acc2);
            acc3 = Fma.MultiplyAdd(Vector256.Create(H(lut, b + 102) * ad[i + 3]), Avx.ConvertToVector256Single(p3), acc3);
        }
        for (; i < nb; i++, b += 34, q8 += 32)
        {
            var w0 = Vector256.Load((sbyte*)(b + 2));
            var p0 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w0), Avx2.Sign(Vector256.Load(q8), w0)), ones);
            acc0 = Fma.MultiplyAdd(Vector256.Create(H(lut, b) * ad[i]), Avx.ConvertToVector256Single(p0), acc0);
        }
        return Vector256.Sum((acc0 + acc1) + (acc2 + acc3));
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

    // ---------------- Q2_K: 84-byte super-blocks {scales[16] (lo: scale, hi: min), qs[64], fp16 d, fp16 dmin}; value = d·sc·q − dmin·m ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q2_KAvx2(byte* b, in QuantActivations a)
    {
        int nb = a.K / 256;
        float* lut = F16;
        var acc = Vector256<float>.Zero; var accm = Vector256<float>.Zero;
        var m3 = Vector256.Create((byte)3); var m4 = Vector128.Create((byte)0x0F);
        var c0 = Vector256.Load(Ctl + 32 * 8); var c1 = Vector256.Load(Ctl + 32 * 9); var c2 = Vector256.Load(Ctl + 32 * 10); var c3 = Vector256.Load(Ctl + 32 * 11);
        for (int i = 0; i < nb; i++, b += 84)
        {
            sbyte* q8 = a.Qs + i * 256; short* bs = a.BSums + i * 16;
            var raw = Vector128.Load(b);
            var sc = Avx2.ConvertToVector256Int16(raw & m4).AsByte();
            var mn = Avx2.ConvertToVector256Int16((raw.AsUInt16() >> 4).AsByte() & m4);
            var mprod = Avx2.MultiplyAddAdjacent(mn, Vector256.Load(bs));
            var sumi = Vector256<int>.Zero;
            for (int n = 0; n < 2; n++)
            {
                var scn = n == 0 ? Avx2.Permute2x128(sc, sc, 0x00) : Avx2.Permute2x128(sc, sc, 0x11);
                var qv = Vector256.Load(b + 16 + 32 * n).AsUInt16(); sbyte* a8 = q8 + 128 * n;
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(qv.AsByte() & m3, Vector256.Load(a8)), Avx2.Shuffle(scn, c0).AsInt16());
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent((qv >> 2).AsByte() & m3, Vector256.Load(a8 + 32)), Avx2.Shuffle(scn, c1).AsInt16());
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent((qv >> 4).AsByte() & m3, Vector256.Load(a8 + 64)), Avx2.Shuffle(scn, c2).AsInt16());
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent((qv >> 6).AsByte() & m3, Vector256.Load(a8 + 96)), Avx2.Shuffle(scn, c3).AsInt16());
            }
            float da = a.D[i];
            acc = Fma.MultiplyAdd(Vector256.Create(H(lut, b + 80) * da), Avx.ConvertToVector256Single(sumi), acc);
            accm = Fma.MultiplyAdd(Vector256.Create(H(lut, b + 82) * da), Avx.ConvertToVector256Single(mprod), accm);
        }
        return Vector256.Sum(acc - accm);
    }

    static float Q2_KScalar(byte* b, in QuantActivations a)
    {
        float s = 0;
        for (int i = 0; i < a.K / 256; i++, b += 84)
        {
            sbyte* q8 = a.Qs + i * 256; short* bs = a.BSums + i * 16;
            int sumi = 0, msum = 0;
            for (int j = 0; j < 16; j++) msum += (b[j] >> 4) * bs[j];
            for (int n = 0; n < 2; n++)
                for (int sh = 0; sh < 4; sh++)
                    for (int l = 0; l < 32; l++)
                    {
                        int e = 128 * n + 32 * sh + l;
                        sumi += (b[e / 16] & 0xF) * ((b[16 + 32 * n + l] >> (2 * sh)) & 3) * q8[e];
                    }
            s += H(b + 80) * a.D[i] * sumi - H(b + 82) * a.D[i] * msum;
        }
        return s;
    }

    // ---------------- Q3_K: 110-byte super-blocks {hmask[32], qs[64], scales[12] (6-bit, −32), fp16 d}; value = d·sc·(q2 | h<<2 − 4) ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q3_KAvx2(byte* b, in QuantActivations a)
    {
        int nb = a.K / 256;
        float* lut = F16;
        var acc = Vector256<float>.Zero;
        var m3 = Vector256.Create((byte)3); var m4b = Vector256.Create((byte)4); var m32 = Vector128.Create((sbyte)32);
        var c0 = Vector256.Load(Ctl + 32 * 8); var c1 = Vector256.Load(Ctl + 32 * 9); var c2 = Vector256.Load(Ctl + 32 * 10); var c3 = Vector256.Load(Ctl + 32 * 11);
        for (int i = 0; i < nb; i++, b += 110)
        {
            sbyte* q8 = a.Qs + i * 256; short* bs = a.BSums + i * 16;
            uint* aux = (uint*)(b + 96);
            uint x0 = aux[0], x1 = aux[1], x2 = aux[2];
            var s8 = Vector128.Create(
                (x0 & 0x0F0F0F0Fu) | ((x2 & 0x03030303u) << 4),
                (x1 & 0x0F0F0F0Fu) | (((x2 >> 2) & 0x03030303u) << 4),
                ((x0 >> 4) & 0x0F0F0F0Fu) | (((x2 >> 4) & 0x03030303u) << 4),
                ((x1 >> 4) & 0x0F0F0F0Fu) | (((x2 >> 6) & 0x03030303u) << 4)).AsSByte() - m32;
            var sc = Avx2.ConvertToVector256Int16(s8);
            var sumi = Vector256<int>.Zero - Avx2.ShiftLeftLogical(Avx2.MultiplyAddAdjacent(sc, Vector256.Load(bs)), 2);
            var scb = sc.AsByte();
            var hm = Vector256.Load(b).AsUInt16();
            for (int n = 0; n < 2; n++)
            {
                var scn = n == 0 ? Avx2.Permute2x128(scb, scb, 0x00) : Avx2.Permute2x128(scb, scb, 0x11);
                var qv = Vector256.Load(b + 32 + 32 * n).AsUInt16(); sbyte* a8 = q8 + 128 * n;
                var h = hm >> (4 * n);
                var w0 = (qv.AsByte() & m3) | ((h << 2).AsByte() & m4b);
                var w1 = ((qv >> 2).AsByte() & m3) | ((h << 1).AsByte() & m4b);
                var w2 = ((qv >> 4).AsByte() & m3) | (h.AsByte() & m4b);
                var w3 = ((qv >> 6).AsByte() & m3) | ((h >> 1).AsByte() & m4b);
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w0, Vector256.Load(a8)), Avx2.Shuffle(scn, c0).AsInt16());
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w1, Vector256.Load(a8 + 32)), Avx2.Shuffle(scn, c1).AsInt16());
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w2, Vector256.Load(a8 + 64)), Avx2.Shuffle(scn, c2).AsInt16());
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w3, Vector256.Load(a8 + 96)), Avx2.Shuffle(scn, c3).AsInt16());
            }
            acc = Fma.MultiplyAdd(Vector256.Create(H(lut, b + 108) * a.D[i]), Avx.ConvertToVector256Single(sumi), acc);
        }
        return Vector256.Sum(acc);
    }

    static float Q3_KScalar(byte* b, in QuantActivations a)
    {
        float s = 0;
        sbyte* sc = stackalloc sbyte[16];
        for (int i = 0; i < a.K / 256; i++, b += 110)
        {
            sbyte* q8 = a.Qs + i * 256; short* bs = a.BSums + i * 16;
            Q3_K.UnpackScales(new ReadOnlySpan<byte>(b + 96, 12), new Span<sbyte>(sc, 16));
            int sumi = 0, csum = 0;
            for (int j = 0; j < 16; j++) csum += sc[j] * bs[j];
            for (int n = 0; n < 2; n++)
                for (int sh = 0; sh < 4; sh++)
                    for (int l = 0; l < 32; l++)
                    {
                        int e = 128 * n + 32 * sh + l;
                        int q = ((b[32 + 32 * n + l] >> (2 * sh)) & 3) | ((b[l] >> (4 * n + sh)) & 1) << 2;
                        sumi += sc[e / 16] * q * q8[e];
                    }
            s += H(b + 108) * a.D[i] * (sumi - 4 * csum);
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

    /// <summary>The 12 packed bytes of Q4_K/Q5_K scales and mins as 16 int16: [sc0..sc7, m0..m7].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<short> ScalesMinsK4Vec(byte* s)
    {
        uint u0 = *(uint*)s, u1 = *(uint*)(s + 4), u2 = *(uint*)(s + 8);
        var v = Vector128.Create(
            u0 & 0x3F3F3F3Fu,
            (u2 & 0x0F0F0F0Fu) | (((u0 >> 6) & 0x03030303u) << 4),
            u1 & 0x3F3F3F3Fu,
            ((u2 >> 4) & 0x0F0F0F0Fu) | (((u1 >> 6) & 0x03030303u) << 4));
        return Avx2.ConvertToVector256Int16(v.AsByte());
    }

    /// <summary>Σ_j m_j·(bsum[2j] + bsum[2j+1]) as 4 int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<int> MinsK4(Vector256<short> ms, short* bs)
    {
        var b = Vector256.Load(bs);
        var pairs = Ssse3.HorizontalAdd(b.GetLower(), b.GetUpper());
        return Sse2.MultiplyAddAdjacent(ms.GetUpper(), pairs);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q4_KAvx2(byte* b, in QuantActivations a)
    {
        int nb = a.K / 256;
        float* lut = F16; byte* ctl = Ctl;
        var acc = Vector256<float>.Zero; var accm = Vector128<float>.Zero;
        var m4 = Vector256.Create((byte)0x0F);
        for (int i = 0; i < nb; i++, b += 144)
        {
            sbyte* q8 = a.Qs + i * 256;
            var ms = ScalesMinsK4Vec(b + 4);
            var mprod = MinsK4(ms, a.BSums + i * 16);
            var sc = ms.GetLower().AsByte(); var scs = Vector256.Create(sc, sc);
            var sumi0 = Vector256<int>.Zero; var sumi1 = Vector256<int>.Zero;
            byte* q = b + 16;
            for (int c = 0; c < 4; c++, q += 32, q8 += 64)
            {
                var raw = Vector256.Load(q);
                var p0 = Avx2.MultiplyAddAdjacent(raw & m4, Vector256.Load(q8));
                var p1 = Avx2.MultiplyAddAdjacent((raw.AsUInt16() >> 4).AsByte() & m4, Vector256.Load(q8 + 32));
                sumi0 += Avx2.MultiplyAddAdjacent(p0, Avx2.Shuffle(scs, Vector256.Load(ctl + 64 * c)).AsInt16());
                sumi1 += Avx2.MultiplyAddAdjacent(p1, Avx2.Shuffle(scs, Vector256.Load(ctl + 64 * c + 32)).AsInt16());
            }
            float da = a.D[i];
            acc = Fma.MultiplyAdd(Vector256.Create(H(lut, b) * da), Avx.ConvertToVector256Single(sumi0 + sumi1), acc);
            accm = Fma.MultiplyAdd(Vector128.Create(H(lut, b + 2) * da), Sse2.ConvertToVector128Single(mprod), accm);
        }
        return Vector256.Sum(acc) - Vector128.Sum(accm);
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

    // ---------------- Q5_K: 176-byte super-blocks {d, dmin, scales[12], qh[32], qs[128]}; value = d·sc_j·(q | h<<4) − dmin·m_j ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q5_KAvx2(byte* b, in QuantActivations a)
    {
        int nb = a.K / 256;
        float* lut = F16; byte* ctl = Ctl;
        var acc = Vector256<float>.Zero; var accm = Vector128<float>.Zero;
        var m4 = Vector256.Create((byte)0x0F); var m16 = Vector256.Create((byte)0x10);
        for (int i = 0; i < nb; i++, b += 176)
        {
            sbyte* q8 = a.Qs + i * 256;
            var ms = ScalesMinsK4Vec(b + 4);
            var mprod = MinsK4(ms, a.BSums + i * 16);
            var sc = ms.GetLower().AsByte(); var scs = Vector256.Create(sc, sc);
            var sumi0 = Vector256<int>.Zero; var sumi1 = Vector256<int>.Zero;
            var hb = Vector256.Load(b + 16).AsUInt16();
            byte* q = b + 48;
            for (int c = 0; c < 4; c++, q += 32, q8 += 64)
            {
                var raw = Vector256.Load(q);
                var hs = hb >> (2 * c);
                var lo = (raw & m4) | ((hs << 4).AsByte() & m16);
                var hi = ((raw.AsUInt16() >> 4).AsByte() & m4) | ((hs << 3).AsByte() & m16);
                var p0 = Avx2.MultiplyAddAdjacent(lo, Vector256.Load(q8));
                var p1 = Avx2.MultiplyAddAdjacent(hi, Vector256.Load(q8 + 32));
                sumi0 += Avx2.MultiplyAddAdjacent(p0, Avx2.Shuffle(scs, Vector256.Load(ctl + 64 * c)).AsInt16());
                sumi1 += Avx2.MultiplyAddAdjacent(p1, Avx2.Shuffle(scs, Vector256.Load(ctl + 64 * c + 32)).AsInt16());
            }
            float da = a.D[i];
            acc = Fma.MultiplyAdd(Vector256.Create(H(lut, b) * da), Avx.ConvertToVector256Single(sumi0 + sumi1), acc);
            accm = Fma.MultiplyAdd(Vector128.Create(H(lut, b + 2) * da), Sse2.ConvertToVector128Single(mprod), accm);
        }
        return Vector256.Sum(acc) - Vector128.Sum(accm);
    }

    static float Q5_KScalar(byte* b, in QuantActivations a)
    {
        float s = 0;
        int* sc = stackalloc int[8]; int* mn = stackalloc int[8];
        for (int i = 0; i < a.K / 256; i++, b += 176)
        {
            sbyte* q8 = a.Qs + i * 256;
            ScalesMinsK4(b + 4, sc, mn);
            int sumi = 0, msum = 0;
            for (int j = 0; j < 8; j++)
            {
                byte* q = b + 48 + (j / 2) * 32;
                int shift = (j & 1) * 4, part = 0;
                for (int l = 0; l < 32; l++) part += (((q[l] >> shift) & 0xF) | ((b[16 + l] >> j) & 1) << 4) * q8[j * 32 + l];
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
        float* lut = F16;
        var acc = Vector256<float>.Zero;
        var m4 = Vector256.Create((byte)0x0F); var m2 = Vector256.Create((byte)0x03);
        var c0 = Vector256.Load(Ctl + 32 * 8); var c1 = Vector256.Load(Ctl + 32 * 9); var c2 = Vector256.Load(Ctl + 32 * 10); var c3 = Vector256.Load(Ctl + 32 * 11);
        for (int i = 0; i < nb; i++, b += 210)
        {
            sbyte* q8 = a.Qs + i * 256;
            var sc = Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(b + 192)));
            var sumi = Vector256<int>.Zero - Avx2.ShiftLeftLogical(Avx2.MultiplyAddAdjacent(sc, Vector256.Load(a.BSums + i * 16)), 5);
            var scb = sc.AsByte();
            for (int n = 0; n < 2; n++)
            {
                var scn = n == 0 ? Avx2.Permute2x128(scb, scb, 0x00) : Avx2.Permute2x128(scb, scb, 0x11);
                byte* ql = b + 64 * n; sbyte* a8 = q8 + 128 * n;
                var l0 = Vector256.Load(ql); var l1 = Vector256.Load(ql + 32); var h = Vector256.Load(b + 128 + 32 * n).AsUInt16();
                var q1 = (l0 & m4) | ((h.AsByte() & m2).AsUInt16() << 4).AsByte();
                var q2 = (l1 & m4) | (((h >> 2).AsByte() & m2).AsUInt16() << 4).AsByte();
                var q3 = ((l0.AsUInt16() >> 4).AsByte() & m4) | (((h >> 4).AsByte() & m2).AsUInt16() << 4).AsByte();
                var q4 = ((l1.AsUInt16() >> 4).AsByte() & m4) | (((h >> 6).AsByte() & m2).AsUInt16() << 4).AsByte();
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q1, Vector256.Load(a8)), Avx2.Shuffle(scn, c0).AsInt16());
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q2, Vector256.Load(a8 + 32)), Avx2.Shuffle(scn, c1).AsInt16());
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q3, Vector256.Load(a8 + 64)), Avx2.Shuffle(scn, c2).AsInt16());
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q4, Vector256.Load(a8 + 96)), Avx2.Shuffle(scn, c3).AsInt16());
            }
            acc = Fma.MultiplyAdd(Vector256.Create(H(lut, b + 208) * a.D[i]), Avx.ConvertToVector256Single(sumi), acc);
        }
        return Vector256.Sum(acc);
    }

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
