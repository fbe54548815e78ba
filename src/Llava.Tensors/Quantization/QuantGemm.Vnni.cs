// Contract: AVX-VNNI micro-kernels of the prefill GEMM (Q4_0, Q8_0; the K-quants run two AVX2 tiles): one packed K-slice of a
// 16-row strip x 6 token rows → 6 x 16 f32 partial sums (tile[token][row]); integer sums exactly as the scalar twins, f32 operations
// in the same order (bit-identical results).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llava.Tensors.Quantization;

internal static unsafe partial class QuantGemm
{
    // vpdpbusd (u8 weights x s8 activations, 4 products summed into each int32 lane) replaces vpmaddubsw + vpaddw + vpmaddwd:
    // the same int32 sums with no int16 stage, so no saturation limit and one instruction per 4 k x 8 rows x token.
    // Its latency (5) needs ≥ 10 independent accumulators at 2 per cycle: 6 tokens x 2 row vectors. The JIT encodes it as
    // VEX (ymm0-15 only), so a step holds 12 accumulators + 2 weight vectors + 1 broadcast = 15 registers.
    static void VnniKernel(GgmlType type, byte* pk, int kc, in QuantRows a, int* ts, int k0, float* tile)
    {
        switch (type)
        {
            case GgmlType.Q4_0: VnniQ32(pk, kc, a, ts, k0, tile, 0); break;
            case GgmlType.Q8_0: VnniQ32(pk, kc, a, ts, k0, tile, 4); break;
            default:
                // K-quants: each sub-block's int32 sums need their integer scale, a vpmulld (2 uops on the vpdpbusd ports)
                // per 8 (Q4_K, Q5_K) or 4 (Q6_K) vpdpbusd, plus the scaled sums kept in memory (ymm0-15 are full); VNNI
                // versions measured level with (Q4_K, Q5_K) or slower than (Q6_K) the AVX2 kernels, so: two 3-token AVX2
                // tiles here (BestPath sends K-quants to the AVX-512 kernels where there are some).
                Kernel(type, pk, kc, a, ts[0], ts[1], ts[2], k0, tile);
                Kernel(type, pk, kc, a, ts[3], ts[4], ts[5], k0, tile + TileTokens * Strip);
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Dp(Vector256<int> acc, Vector256<byte> w, Vector256<sbyte> x) => AvxVnni.MultiplyWideningAndAdd(acc, w, x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<sbyte> Bcast(sbyte* p, nint o) => Vector256.Create(*(int*)(p + o)).AsSByte();

    // ---------------- Q4_0 / Q8_0: per 32-block i = Σ c·a − (O8 << shift);  acc = fma(i, d_w·d_a, acc) ----------------
    // Q4_0: codes 0..15, the −8 offset is O8 = 8·Σa (shift 0). Q8_0: codes + 128, the offset is 128·Σa = O8 << 4.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void VnniQ32(byte* pw, int kc, in QuantRows a, int* ts, int k0, float* tile, int shift)
    {
        int k = a.K, n32 = k / 32, nblk = kc / 32;
        // Token i's activations at q + oi (o0 = 0): one base register and five offsets through the sweep.
        sbyte* q = a.Qs + (long)ts[0] * k + k0;
        nint o1 = (nint)(ts[1] - ts[0]) * k, o2 = (nint)(ts[2] - ts[0]) * k, o3 = (nint)(ts[3] - ts[0]) * k,
             o4 = (nint)(ts[4] - ts[0]) * k, o5 = (nint)(ts[5] - ts[0]) * k;
        // Per-token scale and offset rows, resolved once (not per block).
        float* d0 = a.D + (long)ts[0] * n32 + k0 / 32, d1 = a.D + (long)ts[1] * n32 + k0 / 32, d2 = a.D + (long)ts[2] * n32 + k0 / 32,
               d3 = a.D + (long)ts[3] * n32 + k0 / 32, d4 = a.D + (long)ts[4] * n32 + k0 / 32, d5 = a.D + (long)ts[5] * n32 + k0 / 32;
        int* f0 = a.O8 + (long)ts[0] * n32 + k0 / 32, f1 = a.O8 + (long)ts[1] * n32 + k0 / 32, f2 = a.O8 + (long)ts[2] * n32 + k0 / 32,
             f3 = a.O8 + (long)ts[3] * n32 + k0 / 32, f4 = a.O8 + (long)ts[4] * n32 + k0 / 32, f5 = a.O8 + (long)ts[5] * n32 + k0 / 32;
        float* sd = (float*)(pw + 16L * kc);
        ClearTile6(tile);
        for (int b = 0; b < nblk; b++, sd += 16, q += 32)
        {
            var c00 = Vector256.Create(-(f0[b] << shift)); var c01 = c00;
            var c10 = Vector256.Create(-(f1[b] << shift)); var c11 = c10;
            var c20 = Vector256.Create(-(f2[b] << shift)); var c21 = c20;
            var c30 = Vector256.Create(-(f3[b] << shift)); var c31 = c30;
            var c40 = Vector256.Create(-(f4[b] << shift)); var c41 = c40;
            var c50 = Vector256.Create(-(f5[b] << shift)); var c51 = c50;
            for (int s = 0; s < 32; s += 4, pw += 64)
            {
                var w0 = Vector256.Load(pw); var w1 = Vector256.Load(pw + 32);
                var x = Bcast(q + s, 0); c00 = Dp(c00, w0, x); c01 = Dp(c01, w1, x);
                x = Bcast(q + s, o1); c10 = Dp(c10, w0, x); c11 = Dp(c11, w1, x);
                x = Bcast(q + s, o2); c20 = Dp(c20, w0, x); c21 = Dp(c21, w1, x);
                x = Bcast(q + s, o3); c30 = Dp(c30, w0, x); c31 = Dp(c31, w1, x);
                x = Bcast(q + s, o4); c40 = Dp(c40, w0, x); c41 = Dp(c41, w1, x);
                x = Bcast(q + s, o5); c50 = Dp(c50, w0, x); c51 = Dp(c51, w1, x);
            }
            var dv0 = Vector256.Load(sd); var dv1 = Vector256.Load(sd + 8);
            Vector256<float> e;
            e = Vector256.Create(d0[b]); AccumulateTile(tile + 0, c00, dv0 * e); AccumulateTile(tile + 8, c01, dv1 * e);
            e = Vector256.Create(d1[b]); AccumulateTile(tile + 16, c10, dv0 * e); AccumulateTile(tile + 24, c11, dv1 * e);
            e = Vector256.Create(d2[b]); AccumulateTile(tile + 32, c20, dv0 * e); AccumulateTile(tile + 40, c21, dv1 * e);
            e = Vector256.Create(d3[b]); AccumulateTile(tile + 48, c30, dv0 * e); AccumulateTile(tile + 56, c31, dv1 * e);
            e = Vector256.Create(d4[b]); AccumulateTile(tile + 64, c40, dv0 * e); AccumulateTile(tile + 72, c41, dv1 * e);
            e = Vector256.Create(d5[b]); AccumulateTile(tile + 80, c50, dv0 * e); AccumulateTile(tile + 88, c51, dv1 * e);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void ClearTile6(float* tile)
    {
        for (int i = 0; i < VnniTileTokens * Strip; i += 8) Vector256.Store(Vector256<float>.Zero, tile + i);
    }
}
