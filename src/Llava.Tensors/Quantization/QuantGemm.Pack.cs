// Contract: unpacks one strip (≤ 16 rows) x one K-slice of ggml blocks into the prefill GEMM's panel: row-interleaved unsigned
// (Q8_0: signed) bytes, 4 k per int32 lane, plus per-row scale / sub-block-scale / min vectors; missing rows are zero.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llava.Tensors.Quantization;

internal static unsafe partial class QuantGemm
{
    // Panel layout for a slice of kc values (kc a multiple of the type's block):
    //   [0, 16·kc)  weights: k-group g (4 consecutive k) at 64·g = rows 0..7 (4 bytes each), then rows 8..15.
    //               Q4_0 / Q4_K: nibble codes 0..15; Q5_K: 0..31; Q6_K: 0..63; Q8_0: the signed int8 codes (VNNI: code + 128).
    //   then, per type, arrays of 16 per-row lanes (64 bytes each; lanes 0..7 = rows 0..7):
    //   Q4_0, Q8_0:  D   f32  [kc/32]           block scale d
    //   Q4_K, Q5_K:  D   f32  [nsb], DM f32 [nsb] (d, dmin), SC i32 [nsb][8] = (sc_j, sc_j) int16 pairs,
    //                MP  i32  [nsb][4] = (m_2i, m_2i+1) int16 pairs
    //   Q6_K:        D   f32  [nsb], SC i32 [nsb][16] = (sc_g, sc_g), OP i32 [nsb][8] = (sc_2i, sc_2i+1)
    static long PackBytes(GgmlType t, int kc)
    {
        int nsb = kc / 256;
        long scales = t switch
        {
            GgmlType.Q4_0 or GgmlType.Q8_0 => kc / 32 * 64L,
            GgmlType.Q4_K or GgmlType.Q5_K => nsb * (64L + 64 + 8 * 64 + 4 * 64),
            _ => nsb * (64L + 16 * 64 + 8 * 64),
        };
        return 16L * kc + scales;
    }

    static void Pack(GgmlType t, byte* w, long rowBytes, int nr, int k0, int kc, byte* dst, bool vnni)
    {
        // vpdpbusd multiplies unsigned by signed bytes: the VNNI Q8_0 kernel takes codes + 128 (the 128·Σa it adds is
        // taken back through the activations' block sums).
        if (t == GgmlType.Q8_0 && vnni)
        {
            PackWeights<U8_0Biased>(w, rowBytes, nr, k0 / 32, kc / 32, dst); PackScales32(w, rowBytes, nr, k0 / 32, kc / 32, 34, (float*)(dst + 16L * kc));
            return;
        }
        switch (t)
        {
            case GgmlType.Q4_0: PackWeights<U4_0>(w, rowBytes, nr, k0 / 32, kc / 32, dst); PackScales32(w, rowBytes, nr, k0 / 32, kc / 32, 18, (float*)(dst + 16L * kc)); break;
            case GgmlType.Q8_0: PackWeights<U8_0>(w, rowBytes, nr, k0 / 32, kc / 32, dst); PackScales32(w, rowBytes, nr, k0 / 32, kc / 32, 34, (float*)(dst + 16L * kc)); break;
            case GgmlType.Q4_K: PackWeights<U4_K>(w, rowBytes, nr, k0 / 32, kc / 32, dst); PackScalesK4(w, rowBytes, nr, k0 / 256, kc / 256, 144, dst + 16L * kc); break;
            case GgmlType.Q5_K: PackWeights<U5_K>(w, rowBytes, nr, k0 / 32, kc / 32, dst); PackScalesK4(w, rowBytes, nr, k0 / 256, kc / 256, 176, dst + 16L * kc); break;
            case GgmlType.Q6_K: PackWeights<U6_K>(w, rowBytes, nr, k0 / 32, kc / 32, dst); PackScalesQ6K(w, rowBytes, nr, k0 / 256, kc / 256, dst + 16L * kc); break;
            default: throw new NotSupportedException(t.ToString());
        }
    }

    /// <summary>The 32 codes of 32-element block <c>blk</c> of a row, one byte each, in element order.</summary>
    interface IUnpack { static abstract Vector256<byte> Unpack(byte* row, int blk); }

    struct U4_0 : IUnpack
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Unpack(byte* row, int blk)
        {
            var v = Vector128.Load(row + 18L * blk + 2);
            var m = Vector128.Create((byte)0x0F);
            return Vector256.Create(v & m, (v.AsUInt16() >> 4).AsByte() & m);
        }
    }

    struct U8_0 : IUnpack
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Unpack(byte* row, int blk) => Vector256.Load(row + 34L * blk + 2);
    }

    struct U8_0Biased : IUnpack
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Unpack(byte* row, int blk) => Vector256.Load(row + 34L * blk + 2) ^ Vector256.Create((byte)0x80);
    }

    struct U4_K : IUnpack
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Unpack(byte* row, int blk)
        {
            int j = blk & 7;
            var q = Vector256.Load(row + 144L * (blk >> 3) + 16 + 32 * (j >> 1));
            if ((j & 1) != 0) q = (q.AsUInt16() >> 4).AsByte();
            return q & Vector256.Create((byte)0x0F);
        }
    }

    struct U5_K : IUnpack
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Unpack(byte* row, int blk)
        {
            int j = blk & 7;
            byte* b = row + 176L * (blk >> 3);
            var q = Vector256.Load(b + 48 + 32 * (j >> 1));
            if ((j & 1) != 0) q = (q.AsUInt16() >> 4).AsByte();
            // Bit j of qh[l] is bit 4 of element l's code; a 16-bit shift by j ≤ 7 then the mask keeps each byte's own bit.
            var h = ((Vector256.Load(b + 16).AsUInt16() >> j).AsByte() & Vector256.Create((byte)1)).AsUInt16() << 4;
            return (q & Vector256.Create((byte)0x0F)) | h.AsByte();
        }
    }

    struct U6_K : IUnpack
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Unpack(byte* row, int blk)
        {
            // Element 128n + 32sh + l: low 4 bits from ql[64n + 32(sh & 1) + l] (low nibble for sh < 2), high 2 bits from qh[32n + l] >> 2sh.
            int j = blk & 7, n = j >> 2, sh = j & 3;
            byte* b = row + 210L * (blk >> 3);
            var ql = Vector256.Load(b + 64 * n + 32 * (sh & 1));
            if (sh >= 2) ql = (ql.AsUInt16() >> 4).AsByte();
            var qh = ((Vector256.Load(b + 128 + 32 * n).AsUInt16() >> (2 * sh)).AsByte() & Vector256.Create((byte)3)).AsUInt16() << 4;
            return (ql & Vector256.Create((byte)0x0F)) | qh.AsByte();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackWeights<T>(byte* w, long rowBytes, int nr, int blk0, int nblk, byte* dst) where T : struct, IUnpack
    {
        for (int b = 0; b < nblk; b++)
            for (int v = 0; v < 2; v++)
            {
                int r = 8 * v;
                byte* row = w + r * rowBytes;
                var r0 = r + 0 < nr ? T.Unpack(row, blk0 + b) : default;
                var r1 = r + 1 < nr ? T.Unpack(row + rowBytes, blk0 + b) : default;
                var r2 = r + 2 < nr ? T.Unpack(row + 2 * rowBytes, blk0 + b) : default;
                var r3 = r + 3 < nr ? T.Unpack(row + 3 * rowBytes, blk0 + b) : default;
                var r4 = r + 4 < nr ? T.Unpack(row + 4 * rowBytes, blk0 + b) : default;
                var r5 = r + 5 < nr ? T.Unpack(row + 5 * rowBytes, blk0 + b) : default;
                var r6 = r + 6 < nr ? T.Unpack(row + 6 * rowBytes, blk0 + b) : default;
                var r7 = r + 7 < nr ? T.Unpack(row + 7 * rowBytes, blk0 + b) : default;
                Transpose8x8(r0.AsInt32(), r1.AsInt32(), r2.AsInt32(), r3.AsInt32(), r4.AsInt32(), r5.AsInt32(), r6.AsInt32(), r7.AsInt32(),
                    (int*)(dst + 64L * 8 * b + 32 * v));
            }
    }

    /// <summary>Rows r0..r7 of 8 int32 (k-groups 0..7) → group g's 8 rows stored at dst + 16·g ints (64 bytes apart).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Transpose8x8(Vector256<int> r0, Vector256<int> r1, Vector256<int> r2, Vector256<int> r3,
                             Vector256<int> r4, Vector256<int> r5, Vector256<int> r6, Vector256<int> r7, int* dst)
    {
        var t0 = Avx2.UnpackLow(r0, r1); var t1 = Avx2.UnpackHigh(r0, r1);   // rows 0,1: g0 g1 | g4 g5 ; g2 g3 | g6 g7
        var t2 = Avx2.UnpackLow(r2, r3); var t3 = Avx2.UnpackHigh(r2, r3);
        var t4 = Avx2.UnpackLow(r4, r5); var t5 = Avx2.UnpackHigh(r4, r5);
        var t6 = Avx2.UnpackLow(r6, r7); var t7 = Avx2.UnpackHigh(r6, r7);
        var u0 = Avx2.UnpackLow(t0.AsInt64(), t2.AsInt64()).AsInt32();     // rows 0-3: g0 | g4
        var u1 = Avx2.UnpackHigh(t0.AsInt64(), t2.AsInt64()).AsInt32();    // g1 | g5
        var u2 = Avx2.UnpackLow(t1.AsInt64(), t3.AsInt64()).AsInt32();     // g2 | g6
        var u3 = Avx2.UnpackHigh(t1.AsInt64(), t3.AsInt64()).AsInt32();    // g3 | g7
        var u4 = Avx2.UnpackLow(t4.AsInt64(), t6.AsInt64()).AsInt32();     // rows 4-7
        var u5 = Avx2.UnpackHigh(t4.AsInt64(), t6.AsInt64()).AsInt32();
        var u6 = Avx2.UnpackLow(t5.AsInt64(), t7.AsInt64()).AsInt32();
        var u7 = Avx2.UnpackHigh(t5.AsInt64(), t7.AsInt64()).AsInt32();
        Vector256.Store(Avx2.Permute2x128(u0, u4, 0x20), dst);
        Vector256.Store(Avx2.Permute2x128(u1, u5, 0x20), dst + 16);
        Vector256.Store(Avx2.Permute2x128(u2, u6, 0x20), dst + 32);
        Vector256.Store(Avx2.Permute2x128(u3, u7, 0x20), dst + 48);
        Vector256.Store(Avx2.Permute2x128(u0, u4, 0x31), dst + 64);
        Vector256.Store(Avx2.Permute2x128(u1, u5, 0x31), dst + 80);
        Vector256.Store(Avx2.Permute2x128(u2, u6, 0x31), dst + 96);
        Vector256.Store(Avx2.Permute2x128(u3, u7, 0x31), dst + 112);
    }

    /// <summary>Two int16 in one int32 lane (lo first), the operand layout of vpmaddwd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Pair(int lo, int hi) => (int)((uint)(ushort)lo | (uint)(ushort)hi << 16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float H(byte* p) => GgmlFp16.ToFloatFast(*(ushort*)p);

    // 32-element types: the fp16 d at the start of each block.
    static void PackScales32(byte* w, long rowBytes, int nr, int blk0, int nblk, int typeSize, float* d)
    {
        for (int r = 0; r < Strip; r++)
        {
            byte* b = w + r * rowBytes + (long)blk0 * typeSize;
            for (int i = 0; i < nblk; i++, b += typeSize) d[16 * i + r] = r < nr ? H(b) : 0f;
        }
    }

    /// <summary>Q4_K / Q5_K 6-bit scales and mins of the 8 sub-blocks (ggml's get_scale_min_k4).</summary>
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

    static void PackScalesK4(byte* w, long rowBytes, int nr, int sb0, int nsb, int typeSize, byte* dst)
    {
        float* d = (float*)dst, dm = d + 16 * nsb;
        int* sc = (int*)(dm + 16 * nsb), mp = sc + 16 * 8 * nsb;
        int* s = stackalloc int[8]; int* m = stackalloc int[8];
        for (int r = 0; r < Strip; r++)
        {
            byte* b = w + r * rowBytes + (long)sb0 * typeSize;
            for (int i = 0; i < nsb; i++, b += typeSize)
            {
                if (r < nr) ScalesMinsK4(b + 4, s, m);
                else for (int j = 0; j < 8; j++) s[j] = m[j] = 0;
                d[16 * i + r] = r < nr ? H(b) : 0f;
                dm[16 * i + r] = r < nr ? H(b + 2) : 0f;
                for (int j = 0; j < 8; j++) sc[16 * (8 * i + j) + r] = Pair(s[j], s[j]);
                for (int j = 0; j < 4; j++) mp[16 * (4 * i + j) + r] = Pair(m[2 * j], m[2 * j + 1]);
            }
        }
    }

    static void PackScalesQ6K(byte* w, long rowBytes, int nr, int sb0, int nsb, byte* dst)
    {
        float* d = (float*)dst;
        int* sc = (int*)(d + 16 * nsb), op = sc + 16 * 16 * nsb;
        for (int r = 0; r < Strip; r++)
        {
            byte* b = w + r * rowBytes + (long)sb0 * 210;
            for (int i = 0; i < nsb; i++, b += 210)
            {
                sbyte* s = (sbyte*)(b + 192);
                d[16 * i + r] = r < nr ? H(b + 208) : 0f;
                for (int g = 0; g < 16; g++) sc[16 * (16 * i + g) + r] = r < nr ? Pair(s[g], s[g]) : 0;
                for (int j = 0; j < 8; j++) op[16 * (8 * i + j) + r] = r < nr ? Pair(s[2 * j], s[2 * j + 1]) : 0;
            }
        }
    }
}
