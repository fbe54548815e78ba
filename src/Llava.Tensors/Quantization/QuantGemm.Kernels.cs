// Contract: AVX2 micro-kernels of the prefill GEMM: one packed K-slice of a 16-row strip x 3 token rows → 3 x 16 f32 partial sums
// (tile[token][row]); integer sums exactly as the scalar twins, f32 operations in the same order (bit-identical results).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llava.Tensors.Quantization;

internal static unsafe partial class QuantGemm
{
    // Per k-group (4 values) step: w0/w1 = rows 0-7 / 8-15 (4 codes per int32 lane), x = the 4 activations of one token
    // broadcast to every lane; vpmaddubsw(w, x) leaves per row two int16 partial sums. Int16 accumulation is exact as
    // long as no lane can exceed 32767: |2·code·127| per step, so 8 steps for 4-bit codes (30480), 4 for 5-bit (31496),
    // 2 for 6-bit (32004); then vpmaddwd widens (with ones, or with the (sc, sc) sub-block scale pairs). A step is 2
    // loads + 3 broadcasts for 6 vpmaddubsw (3 tokens x 2 row vectors); the f32 accumulators live in the tile (touched
    // once per block). The steps of a block are unrolled by hand (the loop overhead was ~10 % of the kernel).
    static void Kernel(GgmlType type, byte* pk, int kc, in QuantRows a, int t0, int t1, int t2, int k0, float* tile)
    {
        switch (type)
        {
            case GgmlType.Q4_0: KernelQ4_0(pk, kc, a, t0, t1, t2, k0, tile); break;
            case GgmlType.Q8_0: KernelQ8_0(pk, kc, a, t0, t1, t2, k0, tile); break;
            case GgmlType.Q4_K: KernelQ4_K(pk, kc, a, t0, t1, t2, k0, tile); break;
            case GgmlType.Q5_K: KernelQ5_K(pk, kc, a, t0, t1, t2, k0, tile); break;
            default: KernelQ6_K(pk, kc, a, t0, t1, t2, k0, tile); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<sbyte> Bcast(sbyte* p) => Vector256.Create(*(int*)p).AsSByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<short> Bcast(short* p) => Vector256.Create(*(int*)p).AsInt16();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void ClearTile(float* tile)
    {
        for (int i = 0; i < TileTokens * Strip; i += 8) Vector256.Store(Vector256<float>.Zero, tile + i);
    }

    /// <summary>acc (8 rows of one token) = fma(i, s, acc).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void AccumulateTile(float* acc, Vector256<int> i, Vector256<float> s)
        => Vector256.Store(Fma.MultiplyAdd(Avx.ConvertToVector256Single(i), s, Vector256.Load(acc)), acc);

    // ---------------- Q4_0: per 32-block i = Σ q·a − 8·S;  acc = fma(i, d_w·d_a, acc) ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void KernelQ4_0(byte* pw, int kc, in QuantRows a, int t0, int t1, int t2, int k0, float* tile)
    {
        int k = a.K, n32 = k / 32, nblk = kc / 32;
        sbyte* q0 = a.Qs + (long)t0 * k + k0, q1 = a.Qs + (long)t1 * k + k0, q2 = a.Qs + (long)t2 * k + k0;
        float* d0 = a.D + (long)t0 * n32 + k0 / 32, d1 = a.D + (long)t1 * n32 + k0 / 32, d2 = a.D + (long)t2 * n32 + k0 / 32;
        int* o0 = a.O8 + (long)t0 * n32 + k0 / 32, o1 = a.O8 + (long)t1 * n32 + k0 / 32, o2 = a.O8 + (long)t2 * n32 + k0 / 32;
        float* sd = (float*)(pw + 16L * kc);
        var ones = Vector256.Create((short)1);
        ClearTile(tile);
        for (int b = 0; b < nblk; b++, sd += 16, pw += 512, q0 += 32, q1 += 32, q2 += 32)
        {
            var w0 = Vector256.Load(pw + 0); var w1 = Vector256.Load(pw + 32);
            var x = Bcast(q0 + 0); var a00 = Avx2.MultiplyAddAdjacent(w0, x); var a01 = Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q1 + 0); var a10 = Avx2.MultiplyAddAdjacent(w0, x); var a11 = Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q2 + 0); var a20 = Avx2.MultiplyAddAdjacent(w0, x); var a21 = Avx2.MultiplyAddAdjacent(w1, x);
            w0 = Vector256.Load(pw + 64); w1 = Vector256.Load(pw + 96);
            x = Bcast(q0 + 4); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q1 + 4); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q2 + 4); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
            w0 = Vector256.Load(pw + 128); w1 = Vector256.Load(pw + 160);
            x = Bcast(q0 + 8); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q1 + 8); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q2 + 8); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
            w0 = Vector256.Load(pw + 192); w1 = Vector256.Load(pw + 224);
            x = Bcast(q0 + 12); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q1 + 12); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q2 + 12); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
            w0 = Vector256.Load(pw + 256); w1 = Vector256.Load(pw + 288);
            x = Bcast(q0 + 16); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q1 + 16); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q2 + 16); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
            w0 = Vector256.Load(pw + 320); w1 = Vector256.Load(pw + 352);
            x = Bcast(q0 + 20); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q1 + 20); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q2 + 20); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
            w0 = Vector256.Load(pw + 384); w1 = Vector256.Load(pw + 416);
            x = Bcast(q0 + 24); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q1 + 24); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q2 + 24); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
            w0 = Vector256.Load(pw + 448); w1 = Vector256.Load(pw + 480);
            x = Bcast(q0 + 28); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q1 + 28); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
            x = Bcast(q2 + 28); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
            Vector256<int> o; Vector256<float> e;
            var dv0 = Vector256.Load(sd); var dv1 = Vector256.Load(sd + 8);
            o = Vector256.Create(o0[b]); e = Vector256.Create(d0[b]);
            AccumulateTile(tile + 0, Avx2.MultiplyAddAdjacent(a00, ones) - o, dv0 * e);
            AccumulateTile(tile + 8, Avx2.MultiplyAddAdjacent(a01, ones) - o, dv1 * e);
            o = Vector256.Create(o1[b]); e = Vector256.Create(d1[b]);
            AccumulateTile(tile + 16, Avx2.MultiplyAddAdjacent(a10, ones) - o, dv0 * e);
            AccumulateTile(tile + 24, Avx2.MultiplyAddAdjacent(a11, ones) - o, dv1 * e);
            o = Vector256.Create(o2[b]); e = Vector256.Create(d2[b]);
            AccumulateTile(tile + 32, Avx2.MultiplyAddAdjacent(a20, ones) - o, dv0 * e);
            AccumulateTile(tile + 40, Avx2.MultiplyAddAdjacent(a21, ones) - o, dv1 * e);
        }
    }

    // ---------------- Q8_0: signed codes via the sign trick |w| · sign(a, w); per 32-block acc = fma(Σ w·a, d_w·d_a, acc) ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void KernelQ8_0(byte* pw, int kc, in QuantRows a, int t0, int t1, int t2, int k0, float* tile)
    {
        // One vpmaddubsw can reach ±32258 here, so each is widened (vpmaddwd with ones) before the next is added.
        int k = a.K, n32 = k / 32, nblk = kc / 32;
        sbyte* q0 = a.Qs + (long)t0 * k + k0, q1 = a.Qs + (long)t1 * k + k0, q2 = a.Qs + (long)t2 * k + k0;
        float* d0 = a.D + (long)t0 * n32 + k0 / 32, d1 = a.D + (long)t1 * n32 + k0 / 32, d2 = a.D + (long)t2 * n32 + k0 / 32;
        float* sd = (float*)(pw + 16L * kc);
        var ones = Vector256.Create((short)1);
        ClearTile(tile);
        for (int b = 0; b < nblk; b++, sd += 16, pw += 512, q0 += 32, q1 += 32, q2 += 32)
        {
            var w0 = Vector256.Load((sbyte*)pw + 0); var w1 = Vector256.Load((sbyte*)pw + 32);
            var u0 = Avx2.Abs(w0); var u1 = Avx2.Abs(w1);
            var x = Bcast(q0 + 0);
            var a00 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            var a01 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q1 + 0);
            var a10 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            var a11 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q2 + 0);
            var a20 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            var a21 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            w0 = Vector256.Load((sbyte*)pw + 64); w1 = Vector256.Load((sbyte*)pw + 96);
            u0 = Avx2.Abs(w0); u1 = Avx2.Abs(w1);
            x = Bcast(q0 + 4);
            a00 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a01 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q1 + 4);
            a10 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a11 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q2 + 4);
            a20 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a21 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            w0 = Vector256.Load((sbyte*)pw + 128); w1 = Vector256.Load((sbyte*)pw + 160);
            u0 = Avx2.Abs(w0); u1 = Avx2.Abs(w1);
            x = Bcast(q0 + 8);
            a00 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a01 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q1 + 8);
            a10 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a11 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q2 + 8);
            a20 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a21 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            w0 = Vector256.Load((sbyte*)pw + 192); w1 = Vector256.Load((sbyte*)pw + 224);
            u0 = Avx2.Abs(w0); u1 = Avx2.Abs(w1);
            x = Bcast(q0 + 12);
            a00 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a01 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q1 + 12);
            a10 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a11 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q2 + 12);
            a20 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a21 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            w0 = Vector256.Load((sbyte*)pw + 256); w1 = Vector256.Load((sbyte*)pw + 288);
            u0 = Avx2.Abs(w0); u1 = Avx2.Abs(w1);
            x = Bcast(q0 + 16);
            a00 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a01 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q1 + 16);
            a10 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a11 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q2 + 16);
            a20 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a21 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            w0 = Vector256.Load((sbyte*)pw + 320); w1 = Vector256.Load((sbyte*)pw + 352);
            u0 = Avx2.Abs(w0); u1 = Avx2.Abs(w1);
            x = Bcast(q0 + 20);
            a00 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a01 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q1 + 20);
            a10 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a11 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q2 + 20);
            a20 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a21 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            w0 = Vector256.Load((sbyte*)pw + 384); w1 = Vector256.Load((sbyte*)pw + 416);
            u0 = Avx2.Abs(w0); u1 = Avx2.Abs(w1);
            x = Bcast(q0 + 24);
            a00 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a01 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q1 + 24);
            a10 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a11 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q2 + 24);
            a20 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a21 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            w0 = Vector256.Load((sbyte*)pw + 448); w1 = Vector256.Load((sbyte*)pw + 480);
            u0 = Avx2.Abs(w0); u1 = Avx2.Abs(w1);
            x = Bcast(q0 + 28);
            a00 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a01 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q1 + 28);
            a10 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a11 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            x = Bcast(q2 + 28);
            a20 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, Avx2.Sign(x, w0)), ones);
            a21 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, Avx2.Sign(x, w1)), ones);
            Vector256<float> e;
            var dv0 = Vector256.Load(sd); var dv1 = Vector256.Load(sd + 8);
            e = Vector256.Create(d0[b]);
            AccumulateTile(tile + 0, a00, dv0 * e);
            AccumulateTile(tile + 8, a01, dv1 * e);
            e = Vector256.Create(d1[b]);
            AccumulateTile(tile + 16, a10, dv0 * e);
            AccumulateTile(tile + 24, a11, dv1 * e);
            e = Vector256.Create(d2[b]);
            AccumulateTile(tile + 32, a20, dv0 * e);
            AccumulateTile(tile + 40, a21, dv1 * e);
        }
    }

    // ---------------- Q4_K / Q5_K: per super-block m = Σ_j sc_j·(Σ q·a), n = Σ_j m_j·(Σ a over sub-block j);
    //                  acc = fma(m, d·d_a, acc); acc = fnma(n, dmin·d_a, acc) ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void KernelQ4_K(byte* pw, int kc, in QuantRows a, int t0, int t1, int t2, int k0, float* tile)
    {
        int k = a.K, n32 = k / 32, nsbAll = k / 256, nsb = kc / 256;
        sbyte* q0 = a.Qs + (long)t0 * k + k0, q1 = a.Qs + (long)t1 * k + k0, q2 = a.Qs + (long)t2 * k + k0;
        float* d0 = a.D + (long)t0 * nsbAll + k0 / 256, d1 = a.D + (long)t1 * nsbAll + k0 / 256, d2 = a.D + (long)t2 * nsbAll + k0 / 256;
        short* m0 = a.B32 + (long)t0 * n32 + k0 / 32, m1 = a.B32 + (long)t1 * n32 + k0 / 32, m2 = a.B32 + (long)t2 * n32 + k0 / 32;
        float* pd = (float*)(pw + 16L * kc), pdm = pd + 16 * nsb;
        byte* psc = (byte*)(pdm + 16 * nsb), pmp = psc + 8 * 64 * nsb;
        ClearTile(tile);
        for (int i = 0; i < nsb; i++, pd += 16, pdm += 16, pmp += 4 * 64, m0 += 8, m1 += 8, m2 += 8)
        {
            Vector256<int> i00 = default, i01 = default, i10 = default, i11 = default, i20 = default, i21 = default;
            for (int j = 0; j < 8; j++, psc += 64, pw += 512, q0 += 32, q1 += 32, q2 += 32)
            {
                var w0 = Vector256.Load(pw + 0); var w1 = Vector256.Load(pw + 32);
                var x = Bcast(q0 + 0); var a00 = Avx2.MultiplyAddAdjacent(w0, x); var a01 = Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 0); var a10 = Avx2.MultiplyAddAdjacent(w0, x); var a11 = Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 0); var a20 = Avx2.MultiplyAddAdjacent(w0, x); var a21 = Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 64); w1 = Vector256.Load(pw + 96);
                x = Bcast(q0 + 4); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 4); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 4); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 128); w1 = Vector256.Load(pw + 160);
                x = Bcast(q0 + 8); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 8); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 8); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 192); w1 = Vector256.Load(pw + 224);
                x = Bcast(q0 + 12); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 12); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 12); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 256); w1 = Vector256.Load(pw + 288);
                x = Bcast(q0 + 16); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 16); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 16); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 320); w1 = Vector256.Load(pw + 352);
                x = Bcast(q0 + 20); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 20); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 20); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 384); w1 = Vector256.Load(pw + 416);
                x = Bcast(q0 + 24); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 24); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 24); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 448); w1 = Vector256.Load(pw + 480);
                x = Bcast(q0 + 28); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 28); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 28); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                var sc0 = Vector256.Load((short*)psc); var sc1 = Vector256.Load((short*)(psc + 32));
                i00 += Avx2.MultiplyAddAdjacent(a00, sc0); i01 += Avx2.MultiplyAddAdjacent(a01, sc1);
                i10 += Avx2.MultiplyAddAdjacent(a10, sc0); i11 += Avx2.MultiplyAddAdjacent(a11, sc1);
                i20 += Avx2.MultiplyAddAdjacent(a20, sc0); i21 += Avx2.MultiplyAddAdjacent(a21, sc1);
            }
            FinishK4(tile, pd, pdm, pmp, m0, d0[i], i00, i01);
            FinishK4(tile + 16, pd, pdm, pmp, m1, d1[i], i10, i11);
            FinishK4(tile + 32, pd, pdm, pmp, m2, d2[i], i20, i21);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void KernelQ5_K(byte* pw, int kc, in QuantRows a, int t0, int t1, int t2, int k0, float* tile)
    {
        int k = a.K, n32 = k / 32, nsbAll = k / 256, nsb = kc / 256;
        sbyte* q0 = a.Qs + (long)t0 * k + k0, q1 = a.Qs + (long)t1 * k + k0, q2 = a.Qs + (long)t2 * k + k0;
        float* d0 = a.D + (long)t0 * nsbAll + k0 / 256, d1 = a.D + (long)t1 * nsbAll + k0 / 256, d2 = a.D + (long)t2 * nsbAll + k0 / 256;
        short* m0 = a.B32 + (long)t0 * n32 + k0 / 32, m1 = a.B32 + (long)t1 * n32 + k0 / 32, m2 = a.B32 + (long)t2 * n32 + k0 / 32;
        float* pd = (float*)(pw + 16L * kc), pdm = pd + 16 * nsb;
        byte* psc = (byte*)(pdm + 16 * nsb), pmp = psc + 8 * 64 * nsb;
        ClearTile(tile);
        for (int i = 0; i < nsb; i++, pd += 16, pdm += 16, pmp += 4 * 64, m0 += 8, m1 += 8, m2 += 8)
        {
            Vector256<int> i00 = default, i01 = default, i10 = default, i11 = default, i20 = default, i21 = default;
            for (int j = 0; j < 8; j++, psc += 64, pw += 512, q0 += 32, q1 += 32, q2 += 32)
            {
                var w0 = Vector256.Load(pw + 0); var w1 = Vector256.Load(pw + 32);
                var x = Bcast(q0 + 0); var a00 = Avx2.MultiplyAddAdjacent(w0, x); var a01 = Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 0); var a10 = Avx2.MultiplyAddAdjacent(w0, x); var a11 = Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 0); var a20 = Avx2.MultiplyAddAdjacent(w0, x); var a21 = Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 64); w1 = Vector256.Load(pw + 96);
                x = Bcast(q0 + 4); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 4); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 4); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 128); w1 = Vector256.Load(pw + 160);
                x = Bcast(q0 + 8); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 8); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 8); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 192); w1 = Vector256.Load(pw + 224);
                x = Bcast(q0 + 12); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 12); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 12); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                var sc0 = Vector256.Load((short*)psc); var sc1 = Vector256.Load((short*)(psc + 32));
                i00 += Avx2.MultiplyAddAdjacent(a00, sc0); i01 += Avx2.MultiplyAddAdjacent(a01, sc1);
                i10 += Avx2.MultiplyAddAdjacent(a10, sc0); i11 += Avx2.MultiplyAddAdjacent(a11, sc1);
                i20 += Avx2.MultiplyAddAdjacent(a20, sc0); i21 += Avx2.MultiplyAddAdjacent(a21, sc1);
                w0 = Vector256.Load(pw + 256); w1 = Vector256.Load(pw + 288);
                x = Bcast(q0 + 16); a00 = Avx2.MultiplyAddAdjacent(w0, x); a01 = Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 16); a10 = Avx2.MultiplyAddAdjacent(w0, x); a11 = Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 16); a20 = Avx2.MultiplyAddAdjacent(w0, x); a21 = Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 320); w1 = Vector256.Load(pw + 352);
                x = Bcast(q0 + 20); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 20); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 20); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 384); w1 = Vector256.Load(pw + 416);
                x = Bcast(q0 + 24); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 24); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 24); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 448); w1 = Vector256.Load(pw + 480);
                x = Bcast(q0 + 28); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 28); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 28); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                i00 += Avx2.MultiplyAddAdjacent(a00, sc0); i01 += Avx2.MultiplyAddAdjacent(a01, sc1);
                i10 += Avx2.MultiplyAddAdjacent(a10, sc0); i11 += Avx2.MultiplyAddAdjacent(a11, sc1);
                i20 += Avx2.MultiplyAddAdjacent(a20, sc0); i21 += Avx2.MultiplyAddAdjacent(a21, sc1);
            }
            FinishK4(tile, pd, pdm, pmp, m0, d0[i], i00, i01);
            FinishK4(tile + 16, pd, pdm, pmp, m1, d1[i], i10, i11);
            FinishK4(tile + 32, pd, pdm, pmp, m2, d2[i], i20, i21);
        }
    }

    // One token's mins (Σ_j m_j·B32_j as 4 vpmaddwd of (m_2p, m_2p+1) pairs against the broadcast (B32_2p, B32_2p+1)),
    // then the super-block's two FMAs into its 16 tile lanes.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void FinishK4(float* tile, float* pd, float* pdm, byte* pmp, short* m, float da, Vector256<int> i0, Vector256<int> i1)
    {
        Vector256<int> n0 = default, n1 = default;
        for (int p = 0; p < 4; p++)
        {
            var y = Bcast(m + 2 * p);
            n0 += Avx2.MultiplyAddAdjacent(Vector256.Load((short*)(pmp + 64 * p)), y);
            n1 += Avx2.MultiplyAddAdjacent(Vector256.Load((short*)(pmp + 64 * p + 32)), y);
        }
        var e = Vector256.Create(da);
        Accumulate(tile, i0, n0, Vector256.Load(pd) * e, Vector256.Load(pdm) * e);
        Accumulate(tile + 8, i1, n1, Vector256.Load(pd + 8) * e, Vector256.Load(pdm + 8) * e);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Accumulate(float* acc, Vector256<int> m, Vector256<int> n, Vector256<float> dd, Vector256<float> dm)
    {
        var c = Fma.MultiplyAdd(Avx.ConvertToVector256Single(m), dd, Vector256.Load(acc));
        Vector256.Store(Fma.MultiplyAddNegated(Avx.ConvertToVector256Single(n), dm, c), acc);
    }

    // ---------------- Q6_K: per super-block i = Σ_g sc_g·(Σ q·a) − 32·Σ_g sc_g·B16_g;  acc = fma(i, d·d_a, acc) ----------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void KernelQ6_K(byte* pw, int kc, in QuantRows a, int t0, int t1, int t2, int k0, float* tile)
    {
        int k = a.K, n16 = k / 16, nsbAll = k / 256, nsb = kc / 256;
        sbyte* q0 = a.Qs + (long)t0 * k + k0, q1 = a.Qs + (long)t1 * k + k0, q2 = a.Qs + (long)t2 * k + k0;
        float* d0 = a.D + (long)t0 * nsbAll + k0 / 256, d1 = a.D + (long)t1 * nsbAll + k0 / 256, d2 = a.D + (long)t2 * nsbAll + k0 / 256;
        short* b0 = a.B16 + (long)t0 * n16 + k0 / 16, b1 = a.B16 + (long)t1 * n16 + k0 / 16, b2 = a.B16 + (long)t2 * n16 + k0 / 16;
        float* pd = (float*)(pw + 16L * kc);
        byte* psc = (byte*)(pd + 16 * nsb), pop = psc + 16 * 64 * nsb;
        ClearTile(tile);
        for (int i = 0; i < nsb; i++, pd += 16, pop += 8 * 64, b0 += 16, b1 += 16, b2 += 16)
        {
            // Code offset first: Σ_g sc_g·B16_g as 8 vpmaddwd of (sc_2p, sc_2p+1) pairs against (B16_2p, B16_2p+1), then i = −32·that.
            Vector256<int> i00 = default, i01 = default, i10 = default, i11 = default, i20 = default, i21 = default;
            for (int p = 0; p < 8; p++)
            {
                var op0 = Vector256.Load((short*)(pop + 64 * p)); var op1 = Vector256.Load((short*)(pop + 64 * p + 32));
                var y = Bcast(b0 + 2 * p); i00 += Avx2.MultiplyAddAdjacent(op0, y); i01 += Avx2.MultiplyAddAdjacent(op1, y);
                y = Bcast(b1 + 2 * p); i10 += Avx2.MultiplyAddAdjacent(op0, y); i11 += Avx2.MultiplyAddAdjacent(op1, y);
                y = Bcast(b2 + 2 * p); i20 += Avx2.MultiplyAddAdjacent(op0, y); i21 += Avx2.MultiplyAddAdjacent(op1, y);
            }
            i00 = Vector256<int>.Zero - (i00 << 5); i01 = Vector256<int>.Zero - (i01 << 5);
            i10 = Vector256<int>.Zero - (i10 << 5); i11 = Vector256<int>.Zero - (i11 << 5);
            i20 = Vector256<int>.Zero - (i20 << 5); i21 = Vector256<int>.Zero - (i21 << 5);
            for (int g = 0; g < 16; g++, psc += 64, pw += 256, q0 += 16, q1 += 16, q2 += 16)
            {
                var sc0 = Vector256.Load((short*)psc); var sc1 = Vector256.Load((short*)(psc + 32));
                var w0 = Vector256.Load(pw + 0); var w1 = Vector256.Load(pw + 32);
                var x = Bcast(q0 + 0); var a00 = Avx2.MultiplyAddAdjacent(w0, x); var a01 = Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 0); var a10 = Avx2.MultiplyAddAdjacent(w0, x); var a11 = Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 0); var a20 = Avx2.MultiplyAddAdjacent(w0, x); var a21 = Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 64); w1 = Vector256.Load(pw + 96);
                x = Bcast(q0 + 4); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 4); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 4); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                i00 += Avx2.MultiplyAddAdjacent(a00, sc0); i01 += Avx2.MultiplyAddAdjacent(a01, sc1);
                i10 += Avx2.MultiplyAddAdjacent(a10, sc0); i11 += Avx2.MultiplyAddAdjacent(a11, sc1);
                i20 += Avx2.MultiplyAddAdjacent(a20, sc0); i21 += Avx2.MultiplyAddAdjacent(a21, sc1);
                w0 = Vector256.Load(pw + 128); w1 = Vector256.Load(pw + 160);
                x = Bcast(q0 + 8); a00 = Avx2.MultiplyAddAdjacent(w0, x); a01 = Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 8); a10 = Avx2.MultiplyAddAdjacent(w0, x); a11 = Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 8); a20 = Avx2.MultiplyAddAdjacent(w0, x); a21 = Avx2.MultiplyAddAdjacent(w1, x);
                w0 = Vector256.Load(pw + 192); w1 = Vector256.Load(pw + 224);
                x = Bcast(q0 + 12); a00 += Avx2.MultiplyAddAdjacent(w0, x); a01 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q1 + 12); a10 += Avx2.MultiplyAddAdjacent(w0, x); a11 += Avx2.MultiplyAddAdjacent(w1, x);
                x = Bcast(q2 + 12); a20 += Avx2.MultiplyAddAdjacent(w0, x); a21 += Avx2.MultiplyAddAdjacent(w1, x);
                i00 += Avx2.MultiplyAddAdjacent(a00, sc0); i01 += Avx2.MultiplyAddAdjacent(a01, sc1);
                i10 += Avx2.MultiplyAddAdjacent(a10, sc0); i11 += Avx2.MultiplyAddAdjacent(a11, sc1);
                i20 += Avx2.MultiplyAddAdjacent(a20, sc0); i21 += Avx2.MultiplyAddAdjacent(a21, sc1);
            }
            var dv0 = Vector256.Load(pd); var dv1 = Vector256.Load(pd + 8);
            var e = Vector256.Create(d0[i]);
            AccumulateTile(tile, i00, dv0 * e); AccumulateTile(tile + 8, i01, dv1 * e);
            e = Vector256.Create(d1[i]);
            AccumulateTile(tile + 16, i10, dv0 * e); AccumulateTile(tile + 24, i11, dv1 * e);
            e = Vector256.Create(d2[i]);
            AccumulateTile(tile + 32, i20, dv0 * e); AccumulateTile(tile + 40, i21, dv1 * e);
        }
    }
}
