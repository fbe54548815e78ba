// Contract: AVX-512BW micro-kernels of the prefill GEMM for the K-quants (Q4_0 / Q8_0 run two AVX2 tiles): one packed K-slice of a 16-row strip x 6 token rows → 6 x 16
// f32 partial sums (tile[token][row]); integer sums exactly as the scalar twins, f32 operations in the same order (bit-identical results).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llava.Tensors.Quantization;

internal static unsafe partial class QuantGemm
{
    // The panel's 64 bytes per k-group (rows 0-7 then 8-15) are one zmm: 16 rows x 4 k. The AVX2 scheme at twice the width
    // (vpmaddubsw, int16 partials, vpmaddwd with the sub-block scale pairs), on 6-token tiles: 6 int16 + 6 int32 accumulators.
    static void Avx512Kernel(GgmlType type, byte* pk, int kc, in QuantRows a, int* ts, int k0, float* tile)
    {
        switch (type)
        {
            case GgmlType.Q4_K or GgmlType.Q5_K: Z512K4(pk, kc, a, ts, k0, tile); break;
            case GgmlType.Q6_K: Z512Q6_K(pk, kc, a, ts, k0, tile); break;
            default:
                // Q4_0, Q8_0 (their fast path is VNNI; a 512-bit Q4_0 measured between AVX2 and VNNI): two 3-token AVX2 tiles.
                Kernel(type, pk, kc, a, ts[0], ts[1], ts[2], k0, tile);
                Kernel(type, pk, kc, a, ts[3], ts[4], ts[5], k0, tile + TileTokens * Strip);
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<sbyte> Bcast512(sbyte* p, nint o) => Vector512.Create(*(int*)(p + o)).AsSByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<short> Mad(Vector512<byte> w, Vector512<sbyte> x) => Avx512BW.MultiplyAddAdjacent(w, x);

    // ---------------- Q4_K / Q5_K: m = Σ_j sc_j·(Σ c·a), n = Σ_j m_j·B32_j per super-block (as the AVX2 kernels) ----------------
    // int16 partials over 4 steps (|2·31·127|·4 = 31496 ≤ 32767 for 5-bit codes), then vpmaddwd with (sc_j, sc_j).

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Z512K4(byte* pw, int kc, in QuantRows a, int* ts, int k0, float* tile)
    {
        int k = a.K, n32 = k / 32, nsbAll = k / 256, nsb = kc / 256;
        sbyte* q = a.Qs + (long)ts[0] * k + k0;
        nint o1 = (nint)(ts[1] - ts[0]) * k, o2 = (nint)(ts[2] - ts[0]) * k, o3 = (nint)(ts[3] - ts[0]) * k,
             o4 = (nint)(ts[4] - ts[0]) * k, o5 = (nint)(ts[5] - ts[0]) * k;
        float* pd = (float*)(pw + 16L * kc), pdm = pd + 16 * nsb;
        byte* psc = (byte*)(pdm + 16 * nsb), pmp = psc + 8 * 64 * nsb;
        for (int i = 0; i < VnniTileTokens * Strip; i += 16) Vector512.Store(Vector512<float>.Zero, tile + i);
        for (int i = 0; i < nsb; i++, pd += 16, pdm += 16, pmp += 4 * 64)
        {
            Vector512<int> m0 = default, m1 = default, m2 = default, m3 = default, m4 = default, m5 = default;
            for (int j = 0; j < 8; j++, psc += 64)
            {
                var sc = Vector512.Load((short*)psc);
                for (int h = 0; h < 2; h++, q += 16)
                {
                    var w = Vector512.Load(pw);
                    var a0 = Mad(w, Bcast512(q, 0)); var a1 = Mad(w, Bcast512(q, o1)); var a2 = Mad(w, Bcast512(q, o2));
                    var a3 = Mad(w, Bcast512(q, o3)); var a4 = Mad(w, Bcast512(q, o4)); var a5 = Mad(w, Bcast512(q, o5));
                    for (int s = 4; s < 16; s += 4)
                    {
                        w = Vector512.Load(pw + 16 * s);
                        a0 += Mad(w, Bcast512(q + s, 0)); a1 += Mad(w, Bcast512(q + s, o1)); a2 += Mad(w, Bcast512(q + s, o2));
                        a3 += Mad(w, Bcast512(q + s, o3)); a4 += Mad(w, Bcast512(q + s, o4)); a5 += Mad(w, Bcast512(q + s, o5));
                    }
                    pw += 256;
                    m0 += Avx512BW.MultiplyAddAdjacent(a0, sc); m1 += Avx512BW.MultiplyAddAdjacent(a1, sc);
                    m2 += Avx512BW.MultiplyAddAdjacent(a2, sc); m3 += Avx512BW.MultiplyAddAdjacent(a3, sc);
                    m4 += Avx512BW.MultiplyAddAdjacent(a4, sc); m5 += Avx512BW.MultiplyAddAdjacent(a5, sc);
                }
            }
            short* b = a.B32 + k0 / 32 + 8 * i;
            FinishK4x16(tile + 0, pd, pdm, pmp, b + (long)ts[0] * n32, a.D[(long)ts[0] * nsbAll + k0 / 256 + i], m0);
            FinishK4x16(tile + 16, pd, pdm, pmp, b + (long)ts[1] * n32, a.D[(long)ts[1] * nsbAll + k0 / 256 + i], m1);
            FinishK4x16(tile + 32, pd, pdm, pmp, b + (long)ts[2] * n32, a.D[(long)ts[2] * nsbAll + k0 / 256 + i], m2);
            FinishK4x16(tile + 48, pd, pdm, pmp, b + (long)ts[3] * n32, a.D[(long)ts[3] * nsbAll + k0 / 256 + i], m3);
            FinishK4x16(tile + 64, pd, pdm, pmp, b + (long)ts[4] * n32, a.D[(long)ts[4] * nsbAll + k0 / 256 + i], m4);
            FinishK4x16(tile + 80, pd, pdm, pmp, b + (long)ts[5] * n32, a.D[(long)ts[5] * nsbAll + k0 / 256 + i], m5);
        }
    }

    /// <summary><see cref="FinishK4"/> on all 16 rows at once: the same lane-wise operations.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void FinishK4x16(float* tile, float* pd, float* pdm, byte* pmp, short* m, float da, Vector512<int> mi)
    {
        Vector512<int> n = default;
        for (int p = 0; p < 4; p++)
            n += Avx512BW.MultiplyAddAdjacent(Vector512.Load((short*)(pmp + 64 * p)), Vector512.Create(*(int*)(m + 2 * p)).AsInt16());
        var e = Vector512.Create(da);
        var c = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(mi), Vector512.Load(pd) * e, Vector512.Load(tile));
        Vector512.Store(Avx512F.FusedMultiplyAddNegated(Avx512F.ConvertToVector512Single(n), Vector512.Load(pdm) * e, c), tile);
    }

    // ---------------- Q6_K: i = Σ_g sc_g·(Σ c·a) − 32·Σ_g sc_g·B16_g per super-block (as the AVX2 kernel) ----------------
    // int16 partials over 2 steps (|2·63·127|·2 = 32004), then vpmaddwd with (sc_g, sc_g).

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Z512Q6_K(byte* pw, int kc, in QuantRows a, int* ts, int k0, float* tile)
    {
        int k = a.K, n16 = k / 16, nsbAll = k / 256, nsb = kc / 256;
        sbyte* q = a.Qs + (long)ts[0] * k + k0;
        nint o1 = (nint)(ts[1] - ts[0]) * k, o2 = (nint)(ts[2] - ts[0]) * k, o3 = (nint)(ts[3] - ts[0]) * k,
             o4 = (nint)(ts[4] - ts[0]) * k, o5 = (nint)(ts[5] - ts[0]) * k;
        float* pd = (float*)(pw + 16L * kc);
        byte* psc = (byte*)(pd + 16 * nsb), pop = psc + 16 * 64 * nsb;
        for (int i = 0; i < VnniTileTokens * Strip; i += 16) Vector512.Store(Vector512<float>.Zero, tile + i);
        for (int i = 0; i < nsb; i++, pd += 16, pop += 8 * 64)
        {
            short* b = a.B16 + k0 / 16 + 16 * i;
            var m0 = Q6Offset16(pop, b + (long)ts[0] * n16); var m1 = Q6Offset16(pop, b + (long)ts[1] * n16);
            var m2 = Q6Offset16(pop, b + (long)ts[2] * n16); var m3 = Q6Offset16(pop, b + (long)ts[3] * n16);
            var m4 = Q6Offset16(pop, b + (long)ts[4] * n16); var m5 = Q6Offset16(pop, b + (long)ts[5] * n16);
            for (int g = 0; g < 16; g++, psc += 64)
            {
                var sc = Vector512.Load((short*)psc);
                for (int h = 0; h < 2; h++, q += 8, pw += 128)
                {
                    var w = Vector512.Load(pw);
                    var a0 = Mad(w, Bcast512(q, 0)); var a1 = Mad(w, Bcast512(q, o1)); var a2 = Mad(w, Bcast512(q, o2));
                    var a3 = Mad(w, Bcast512(q, o3)); var a4 = Mad(w, Bcast512(q, o4)); var a5 = Mad(w, Bcast512(q, o5));
                    w = Vector512.Load(pw + 64);
                    a0 += Mad(w, Bcast512(q + 4, 0)); a1 += Mad(w, Bcast512(q + 4, o1)); a2 += Mad(w, Bcast512(q + 4, o2));
                    a3 += Mad(w, Bcast512(q + 4, o3)); a4 += Mad(w, Bcast512(q + 4, o4)); a5 += Mad(w, Bcast512(q + 4, o5));
                    m0 += Avx512BW.MultiplyAddAdjacent(a0, sc); m1 += Avx512BW.MultiplyAddAdjacent(a1, sc);
                    m2 += Avx512BW.MultiplyAddAdjacent(a2, sc); m3 += Avx512BW.MultiplyAddAdjacent(a3, sc);
                    m4 += Avx512BW.MultiplyAddAdjacent(a4, sc); m5 += Avx512BW.MultiplyAddAdjacent(a5, sc);
                }
            }
            var dv = Vector512.Load(pd);
            float* d = a.D + k0 / 256 + i;
            Acc16(tile + 0, m0, dv * Vector512.Create(d[(long)ts[0] * nsbAll]));
            Acc16(tile + 16, m1, dv * Vector512.Create(d[(long)ts[1] * nsbAll]));
            Acc16(tile + 32, m2, dv * Vector512.Create(d[(long)ts[2] * nsbAll]));
            Acc16(tile + 48, m3, dv * Vector512.Create(d[(long)ts[3] * nsbAll]));
            Acc16(tile + 64, m4, dv * Vector512.Create(d[(long)ts[4] * nsbAll]));
            Acc16(tile + 80, m5, dv * Vector512.Create(d[(long)ts[5] * nsbAll]));
        }
    }

    /// <summary>−32·Σ_g sc_g·B16_g of one token, all 16 rows (the AVX2 kernel's code offset).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> Q6Offset16(byte* pop, short* b)
    {
        Vector512<int> o = default;
        for (int p = 0; p < 8; p++)
            o += Avx512BW.MultiplyAddAdjacent(Vector512.Load((short*)(pop + 64 * p)), Vector512.Create(*(int*)(b + 2 * p)).AsInt16());
        return Vector512<int>.Zero - (o << 5);
    }

    /// <summary>acc (16 rows of one token) = fma(i, s, acc), as <see cref="AccumulateTile"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Acc16(float* acc, Vector512<int> i, Vector512<float> s)
        => Vector512.Store(Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(i), s, Vector512.Load(acc)), acc);
}
