// Contract: AVX-VNNI decode kernels (256-bit vpdpbusd / vpdpwssd) for Q4_0, Q8_0, Q4_K, Q5_K, Q6_K: the same exact integer
// sums as the AVX2 kernels and the scalar twins; Q4_0 / Q8_0 run four rows per pass sharing each activation load.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llava.Tensors.Quantization;

/// <summary>
/// vpdpbusd does maddubs + madd + add in one instruction without the int16 saturation, so:
/// <list type="bullet">
/// <item>32-element types: the code offset goes into the accumulator's start value (−8·S for Q4_0, −128·S for Q8_0,
/// whose signed codes are biased to unsigned with an xor), shared by the four rows of a pass.</item>
/// <item>K-quants: one dpbusd per 32 codes gives int32 sums of 4 products (|sum| ≤ 4·63·127 &lt; 2^15), two of them are
/// packed to int16 (vpackssdw, never saturates) and vpdpwssd applies the sub-block scales and accumulates.</item>
/// </list>
/// Each row's float work is in the same order whether it runs in a 4-row pass or alone, so a row's result does not
/// depend on how rows are split between threads.
/// No 512-bit path: .NET 10 has no AVX512-VNNI, and an Avx512BW Q4_0 (maddubs + madd on 4 blocks per zmm, 4 rows)
/// measured 5–10 % slower than this one on a Xeon with both (512-bit integer multiplies issue on one port only).
/// </summary>
internal static unsafe partial class QuantDot
{
    public static bool VnniUsable => Avx2Usable && AvxVnni.IsSupported;

    // Software prefetch distance in bytes of each row. Streaming from DRAM (weights far larger than the caches) this
    // measured +20–60 % for Q4_0 / Q4_K on the Xeon: the hardware prefetchers alone leave too few misses in flight.
    // Issued about once per cache line: once per block pair was ~10 % slower when the weights sat in cache.
    // 8 KiB ahead rather than 1 KiB: at 1 KiB the kernel's work and the DRAM reads hardly overlapped (cold Q4_0 ran at
    // about the harmonic combination of its in-cache speed and the read bandwidth); 8 KiB measured cold, 2 threads,
    // Q4_0 15.7 -> 20 GB/s, Q4_K 18 -> 22, Q6_K 16 -> 20-23, Q8_0 unchanged at 22-23; 16 KiB was no better for Q4_0.
    const int PrefetchAhead = 8192;

    /// <summary>Prefetches [p + PrefetchAhead, p + PrefetchAhead + bytes) line by line.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void PrefetchRow(byte* p, int bytes)
    {
        for (int o = 0; o < bytes; o += 64) Sse.Prefetch0(p + PrefetchAhead + o);
    }

    // pshufb controls picking the int16 scale of each int16 lane after vpackssdw(p, q):
    // [0..3] Q4_K/Q5_K chunk c (lanes 0-3 → sc[2c], 4-7 → sc[2c+1], both halves);
    // [4..5] Q6_K quarter pair (low half lanes 0-3 → s[2m], 4-7 → s[2m+2]; high half → s[2m+1], s[2m+3]; m = 0 for q1/q2, 2 for q3/q4).
    static readonly byte* CtlV = BuildCtlV();

    static byte* BuildCtlV()
    {
        var p = (byte*)NativeMemory.AlignedAlloc(6 * 32, 64);
        for (int c = 0; c < 4; c++)
            for (int i = 0; i < 16; i++)
            {
                int lane = (i >> 1) & 7, s = lane < 4 ? 2 * c : 2 * c + 1;
                p[32 * c + i] = p[32 * c + 16 + i] = (byte)(2 * s + (i & 1));
            }
        for (int m = 0; m < 2; m++)
            for (int i = 0; i < 32; i++)
            {
                int lane = (i >> 1) & 7, hi = i >> 4;
                int s = 4 * m + hi + (lane < 4 ? 0 : 2);
                p[32 * (4 + m) + i] = (byte)(2 * s + (i & 1));
            }
        return p;
    }

    static bool DotRowsVnni(GgmlType t, byte* w, long rowBytes, int r0, int r1, in QuantActivations a, float* y, float* bias)
    {
        switch (t)
        {
            case GgmlType.Q4_0: Rows4<Q4_0V>(w, rowBytes, r0, r1, a, y, bias); return true;
            case GgmlType.Q8_0: Rows4<Q8_0V>(w, rowBytes, r0, r1, a, y, bias); return true;
            case GgmlType.Q4_K: Rows<Q4_KV>(w, rowBytes, r0, r1, a, y, bias); return true;
            case GgmlType.Q5_K: Rows<Q5_KV>(w, rowBytes, r0, r1, a, y, bias); return true;
            case GgmlType.Q6_K: Rows<Q6_KV>(w, rowBytes, r0, r1, a, y, bias); return true;
            default: return false;   // the other types keep their AVX2 kernels
        }
    }

    interface IRowDot4 : IRowDot { void Dot4(byte* row, long rowBytes, in QuantActivations a, float* y4); }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Rows4<T>(byte* w, long rowBytes, int r0, int r1, in QuantActivations a, float* y, float* bias) where T : struct, IRowDot4
    {
        float* t = stackalloc float[4];
        byte* row = w + r0 * rowBytes;
        int r = r0;
        for (; r + 4 <= r1; r += 4, row += 4 * rowBytes)
        {
            default(T).Dot4(row, rowBytes, a, t);
            for (int j = 0; j < 4; j++) y[r + j] = bias == null ? t[j] : t[j] + bias[r + j];
        }
        for (; r < r1; r++, row += rowBytes)
        {
            float s = default(T).Dot(row, a);
            y[r] = bias == null ? s : s + bias[r];
        }
    }

    struct Q4_0V : IRowDot4
    {
        public float Dot(byte* r, in QuantActivations a) => Q4_0Vnni(r, a);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Dot4(byte* r, long rb, in QuantActivations a, float* y) => Q4_0Vnni4(r, rb, a, y);
    }
    struct Q8_0V : IRowDot4
    {
        public float Dot(byte* r, in QuantActivations a) => Q8_0Vnni(r, a);
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Dot4(byte* r, long rb, in QuantActivations a, float* y) => Q8_0Vnni4(r, rb, a, y);
    }
    // K-quants stay one row per pass: a 4-row Q4_K pass measured no faster (its activation loads are a small share).
    struct Q4_KV : IRowDot { [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Dot(byte* r, in QuantActivations a) => Q4_KVnni(r, a); }
    struct Q5_KV : IRowDot { [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Dot(byte* r, in QuantActivations a) => Q5_KVnni(r, a); }
    struct Q6_KV : IRowDot { [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Dot(byte* r, in QuantActivations a) => Q6_KVnni(r, a); }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Dp(Vector256<int> acc, Vector256<byte> u, Vector256<sbyte> s) => AvxVnni.MultiplyWideningAndAdd(acc, u, s);

    /// <summary>[h(p0) ×4, h(p1) ×4] from two broadcast loads and a blend (no shuffle-port work).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> PairScaleB(float* lut, byte* p0, byte* p1) =>
        Avx.Blend(Avx.BroadcastScalarToVector256(lut + *(ushort*)p0), Avx.BroadcastScalarToVector256(lut + *(ushort*)p1), 0xF0);

    // ---------------- Q4_0 ----------------

    /// <summary>One block pair of one row: acc + (Σ codes·a − 8·S)·d_w·d_a per lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Q4_0VStep(byte* b, Vector256<sbyte> qa, Vector256<sbyte> qb, Vector256<int> negO, Vector256<float> d, float* lut, Vector256<float> acc, bool pf)
    {
        var m4 = Vector256.Create((byte)0x0F);
        if (pf) PrefetchRow(b, 1);
        var r = Load2x16(b + 2, b + 20);
        var s = Dp(Dp(negO, r & m4, qa), (r.AsUInt16() >> 4).AsByte() & m4, qb);
        return Fma.MultiplyAdd(Avx.ConvertToVector256Single(s), PairScaleB(lut, b, b + 18) * d, acc);
    }

    /// <summary>The last block of an odd count.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Q4_0VTail(byte* b, in QuantActivations a, int i, float* lut)
    {
        var r = Vector128.Load(b + 2);
        var w = Vector256.Create(r, (r.AsUInt16() >> 4).AsByte()) & Vector256.Create((byte)0x0F);
        int sum = HSumI(Dp(Vector256<int>.Zero, w, Vector256.Load(a.Qs + 32 * i)));
        return lut[*(ushort*)b] * a.D[i] * (sum - 8 * a.S[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q4_0Vnni(byte* b, in QuantActivations a)
    {
        int nb = a.K >> 5, np = nb >> 1;
        float* lut = F16;
        Vector256<float> acc = default;
        sbyte* q = a.QsP; float* dp = a.DP; int* o = a.O8;
        for (int p = 0; p < np; p++, b += 36, q += 64, dp += 8, o += 8)
            acc = Q4_0VStep(b, Vector256.Load(q), Vector256.Load(q + 32), Vector256<int>.Zero - Vector256.Load(o), Vector256.Load(dp), lut, acc, (p & 1) == 0);
        float s = Vector256.Sum(acc);
        if ((nb & 1) != 0) s += Q4_0VTail(b, a, nb - 1, lut);
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Q4_0Vnni4(byte* b, long rb, in QuantActivations a, float* y)
    {
        int nb = a.K >> 5, np = nb >> 1;
        float* lut = F16;
        Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        sbyte* q = a.QsP; float* dp = a.DP; int* o = a.O8;
        byte* b0 = b, b1 = b + rb, b2 = b + 2 * rb, b3 = b + 3 * rb;
        for (int p = 0; p < np; p++, q += 64, dp += 8, o += 8)
        {
            var qa = Vector256.Load(q); var qb = Vector256.Load(q + 32);
            var negO = Vector256<int>.Zero - Vector256.Load(o); var d = Vector256.Load(dp);
            long off = 36L * p; bool pf = (p & 1) == 0;   // 72 bytes per row between prefetches
            acc0 = Q4_0VStep(b0 + off, qa, qb, negO, d, lut, acc0, pf);
            acc1 = Q4_0VStep(b1 + off, qa, qb, negO, d, lut, acc1, pf);
            acc2 = Q4_0VStep(b2 + off, qa, qb, negO, d, lut, acc2, pf);
            acc3 = Q4_0VStep(b3 + off, qa, qb, negO, d, lut, acc3, pf);
        }
        float s0 = Vector256.Sum(acc0), s1 = Vector256.Sum(acc1), s2 = Vector256.Sum(acc2), s3 = Vector256.Sum(acc3);
        if ((nb & 1) != 0)
        {
            long off = 36L * np;
            s0 += Q4_0VTail(b0 + off, a, nb - 1, lut); s1 += Q4_0VTail(b1 + off, a, nb - 1, lut);
            s2 += Q4_0VTail(b2 + off, a, nb - 1, lut); s3 += Q4_0VTail(b3 + off, a, nb - 1, lut);
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    // ---------------- Q8_0: codes xor 0x80 = code + 128 (unsigned), so Σ(w+128)·a − 128·S = Σ w·a ----------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Q8_0VStep(byte* b, Vector256<sbyte> qa, Vector256<int> negO, Vector256<float> d, float* lut, Vector256<float> acc, bool pf)
    {
        if (pf) PrefetchRow(b, 1);
        var w = Vector256.Load(b + 2) ^ Vector256.Create((byte)0x80);
        var s = Dp(negO, w, qa);
        return Fma.MultiplyAdd(Avx.ConvertToVector256Single(s), Avx.BroadcastScalarToVector256(lut + *(ushort*)b) * d, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q8_0Vnni(byte* b, in QuantActivations a)
    {
        int nb = a.K >> 5;
        float* lut = F16;
        Vector256<float> acc = default;
        sbyte* q8 = a.Qs; float* ad = a.D; int* sp = a.S;
        for (int i = 0; i < nb; i++, b += 34, q8 += 32)
            acc = Q8_0VStep(b, Vector256.Load(q8), Vector256.CreateScalar(-128 * sp[i]), Vector256.Create(ad[i]), lut, acc, (i & 1) == 0);
        return Vector256.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Q8_0Vnni4(byte* b, long rb, in QuantActivations a, float* y)
    {
        int nb = a.K >> 5;
        float* lut = F16;
        Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        sbyte* q8 = a.Qs; float* ad = a.D; int* sp = a.S;
        byte* b0 = b, b1 = b + rb, b2 = b + 2 * rb, b3 = b + 3 * rb;
        for (int i = 0; i < nb; i++, q8 += 32)
        {
            var qa = Vector256.Load(q8); var negO = Vector256.CreateScalar(-128 * sp[i]); var d = Vector256.Create(ad[i]);
            long off = 34L * i; bool pf = (i & 1) == 0;
            acc0 = Q8_0VStep(b0 + off, qa, negO, d, lut, acc0, pf);
            acc1 = Q8_0VStep(b1 + off, qa, negO, d, lut, acc1, pf);
            acc2 = Q8_0VStep(b2 + off, qa, negO, d, lut, acc2, pf);
            acc3 = Q8_0VStep(b3 + off, qa, negO, d, lut, acc3, pf);
        }
        y[0] = Vector256.Sum(acc0); y[1] = Vector256.Sum(acc1); y[2] = Vector256.Sum(acc2); y[3] = Vector256.Sum(acc3);
    }

    // ---------------- K-quants: dpbusd per 32 codes, vpackssdw two of them, vpdpwssd with the sub-block scales ----------------

    /// <summary>sumi + p·sc_p + q·sc_q, with p, q the dpbusd sums of two 32-code runs and scl the scale picked per packed lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> PackScale(Vector256<int> sumi, Vector256<int> p, Vector256<int> q, Vector256<short> scl) =>
        AvxVnni.MultiplyWideningAndAdd(sumi, Avx2.PackSignedSaturate(p, q), scl);

    /// <summary>One Q4_K super-block of one row: (acc, accm) += d·da·Σ sc_j·(codes·a)_j, dmin·da·Σ m_j·bsums_j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Q4_KVStep(byte* b, sbyte* q8, short* bs, float da, float* lut, byte* ctl, ref Vector256<float> acc, ref Vector128<float> accm)
    {
        var m4 = Vector256.Create((byte)0x0F);
        PrefetchRow(b, 144);
        var ms = ScalesMinsK4Vec(b + 4);
        var mprod = MinsK4(ms, bs);
        var sc = ms.GetLower().AsByte(); var scs = Vector256.Create(sc, sc);
        var z = Vector256<int>.Zero;
        var r0 = Vector256.Load(b + 16); var r1 = Vector256.Load(b + 48); var r2 = Vector256.Load(b + 80); var r3 = Vector256.Load(b + 112);
        var sumi = PackScale(z, Dp(z, r0 & m4, Vector256.Load(q8)), Dp(z, (r0.AsUInt16() >> 4).AsByte() & m4, Vector256.Load(q8 + 32)), Avx2.Shuffle(scs, Vector256.Load(ctl)).AsInt16());
        sumi = PackScale(sumi, Dp(z, r1 & m4, Vector256.Load(q8 + 64)), Dp(z, (r1.AsUInt16() >> 4).AsByte() & m4, Vector256.Load(q8 + 96)), Avx2.Shuffle(scs, Vector256.Load(ctl + 32)).AsInt16());
        sumi = PackScale(sumi, Dp(z, r2 & m4, Vector256.Load(q8 + 128)), Dp(z, (r2.AsUInt16() >> 4).AsByte() & m4, Vector256.Load(q8 + 160)), Avx2.Shuffle(scs, Vector256.Load(ctl + 64)).AsInt16());
        sumi = PackScale(sumi, Dp(z, r3 & m4, Vector256.Load(q8 + 192)), Dp(z, (r3.AsUInt16() >> 4).AsByte() & m4, Vector256.Load(q8 + 224)), Avx2.Shuffle(scs, Vector256.Load(ctl + 96)).AsInt16());
        acc = Fma.MultiplyAdd(Vector256.Create(H(lut, b) * da), Avx.ConvertToVector256Single(sumi), acc);
        accm = Fma.MultiplyAdd(Vector128.Create(H(lut, b + 2) * da), Sse2.ConvertToVector128Single(mprod), accm);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q4_KVnni(byte* b, in QuantActivations a)
    {
        int nb = a.K / 256;
        float* lut = F16; byte* ctl = CtlV;
        var acc = Vector256<float>.Zero; var accm = Vector128<float>.Zero;
        for (int i = 0; i < nb; i++, b += 144)
            Q4_KVStep(b, a.Qs + i * 256, a.BSums + i * 16, a.D[i], lut, ctl, ref acc, ref accm);
        return Vector256.Sum(acc) - Vector128.Sum(accm);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q5_KVnni(byte* b, in QuantActivations a)
    {
        int nb = a.K / 256;
        float* lut = F16; byte* ctl = CtlV;
        var acc = Vector256<float>.Zero; var accm = Vector128<float>.Zero;
        var m4 = Vector256.Create((byte)0x0F); var m16 = Vector256.Create((byte)0x10);
        for (int i = 0; i < nb; i++, b += 176)
        {
            sbyte* q8 = a.Qs + i * 256;
            var ms = ScalesMinsK4Vec(b + 4);
            var mprod = MinsK4(ms, a.BSums + i * 16);
            var sc = ms.GetLower().AsByte(); var scs = Vector256.Create(sc, sc);
            var z = Vector256<int>.Zero; var sumi = z;
            PrefetchRow(b, 176);
            var hb = Vector256.Load(b + 16).AsUInt16();
            byte* q = b + 48;
            for (int c = 0; c < 4; c++, q += 32, q8 += 64)
            {
                var raw = Vector256.Load(q);
                var hs = hb >> (2 * c);
                var lo = (raw & m4) | ((hs << 4).AsByte() & m16);
                var hi = ((raw.AsUInt16() >> 4).AsByte() & m4) | ((hs << 3).AsByte() & m16);
                sumi = PackScale(sumi, Dp(z, lo, Vector256.Load(q8)), Dp(z, hi, Vector256.Load(q8 + 32)), Avx2.Shuffle(scs, Vector256.Load(ctl + 32 * c)).AsInt16());
            }
            float da = a.D[i];
            acc = Fma.MultiplyAdd(Vector256.Create(H(lut, b) * da), Avx.ConvertToVector256Single(sumi), acc);
            accm = Fma.MultiplyAdd(Vector128.Create(H(lut, b + 2) * da), Sse2.ConvertToVector128Single(mprod), accm);
        }
        return Vector256.Sum(acc) - Vector128.Sum(accm);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q6_KVnni(byte* b, in QuantActivations a)
    {
        int nb = a.K / 256;
        float* lut = F16;
        var acc = Vector256<float>.Zero;
        var m4 = Vector256.Create((byte)0x0F); var m2 = Vector256.Create((byte)0x03);
        var k12 = Vector256.Load(CtlV + 32 * 4); var k34 = Vector256.Load(CtlV + 32 * 5);
        for (int i = 0; i < nb; i++, b += 210)
        {
            sbyte* q8 = a.Qs + i * 256;
            PrefetchRow(b, 210);
            var sc = Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(b + 192)));
            var sumi = Vector256<int>.Zero - Avx2.ShiftLeftLogical(Avx2.MultiplyAddAdjacent(sc, Vector256.Load(a.BSums + i * 16)), 5);
            var scb = sc.AsByte(); var z = Vector256<int>.Zero;
            for (int n = 0; n < 2; n++)
            {
                var scn = n == 0 ? Avx2.Permute2x128(scb, scb, 0x00) : Avx2.Permute2x128(scb, scb, 0x11);
                byte* ql = b + 64 * n; sbyte* a8 = q8 + 128 * n;
                var l0 = Vector256.Load(ql); var l1 = Vector256.Load(ql + 32); var h = Vector256.Load(b + 128 + 32 * n).AsUInt16();
                var q1 = (l0 & m4) | ((h.AsByte() & m2).AsUInt16() << 4).AsByte();
                var q2 = (l1 & m4) | (((h >> 2).AsByte() & m2).AsUInt16() << 4).AsByte();
                var q3 = ((l0.AsUInt16() >> 4).AsByte() & m4) | (((h >> 4).AsByte() & m2).AsUInt16() << 4).AsByte();
                var q4 = ((l1.AsUInt16() >> 4).AsByte() & m4) | (((h >> 6).AsByte() & m2).AsUInt16() << 4).AsByte();
                sumi = PackScale(sumi, Dp(z, q1, Vector256.Load(a8)), Dp(z, q2, Vector256.Load(a8 + 32)), Avx2.Shuffle(scn, k12).AsInt16());
                sumi = PackScale(sumi, Dp(z, q3, Vector256.Load(a8 + 64)), Dp(z, q4, Vector256.Load(a8 + 96)), Avx2.Shuffle(scn, k34).AsInt16());
            }
            acc = Fma.MultiplyAdd(Vector256.Create(H(lut, b + 208) * a.D[i]), Avx.ConvertToVector256Single(sumi), acc);
        }
        return Vector256.Sum(acc);
    }
}
