// Contract: scalar twin of the prefill GEMM micro-kernels: the same tile (3 tokens x 16 rows of one K-slice) straight from the ggml
// blocks, with the same integer sums and the same f32 operations in the same order as the AVX2 kernels (bit-identical).
using System.Runtime.CompilerServices;

namespace Llava.Tensors.Quantization;

internal static unsafe partial class QuantGemm
{
    /// <summary>tile[16·i + r] = Σ over the slice [k0, k0 + kc) of row r (of <paramref name="nr"/>) with token t0, t1, t2 (i = 0, 1, 2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ScalarTile(GgmlType type, byte* w, long rowBytes, int nr, int k0, int kc, in QuantRows a, int t0, int t1, int t2, float* tile)
    {
        for (int i = 0; i < TileTokens; i++)
        {
            int t = i == 0 ? t0 : i == 1 ? t1 : t2;
            for (int r = 0; r < Strip; r++)
                tile[Strip * i + r] = r >= nr ? 0f : type switch
                {
                    GgmlType.Q4_0 => ScalarQ4_0(w + r * rowBytes, k0, kc, a, t),
                    GgmlType.Q8_0 => ScalarQ8_0(w + r * rowBytes, k0, kc, a, t),
                    GgmlType.Q4_K => ScalarK4(w + r * rowBytes, k0, kc, a, t, five: false),
                    GgmlType.Q5_K => ScalarK4(w + r * rowBytes, k0, kc, a, t, five: true),
                    _ => ScalarQ6_K(w + r * rowBytes, k0, kc, a, t),
                };
        }
    }

    static float ScalarQ4_0(byte* row, int k0, int kc, in QuantRows a, int t)
    {
        int n32 = a.K / 32;
        float acc = 0;
        for (int blk = k0 / 32; blk < (k0 + kc) / 32; blk++)
        {
            byte* b = row + 18L * blk;
            sbyte* q = a.Qs + (long)t * a.K + 32 * blk;
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += (b[2 + j] & 0xF) * q[j] + (b[2 + j] >> 4) * q[j + 16];
            int s = sum - a.O8[(long)t * n32 + blk];
            acc = MathF.FusedMultiplyAdd(s, H(b) * a.D[(long)t * n32 + blk], acc);
        }
        return acc;
    }

    static float ScalarQ8_0(byte* row, int k0, int kc, in QuantRows a, int t)
    {
        int n32 = a.K / 32;
        float acc = 0;
        for (int blk = k0 / 32; blk < (k0 + kc) / 32; blk++)
        {
            byte* b = row + 34L * blk;
            sbyte* q = a.Qs + (long)t * a.K + 32 * blk;
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += (sbyte)b[2 + j] * q[j];
            acc = MathF.FusedMultiplyAdd(sum, H(b) * a.D[(long)t * n32 + blk], acc);
        }
        return acc;
    }

    static float ScalarK4(byte* row, int k0, int kc, in QuantRows a, int t, bool five)
    {
        int typeSize = five ? 176 : 144, nsbAll = a.K / 256, n32 = a.K / 32;
        int* sc = stackalloc int[8]; int* mn = stackalloc int[8];
        float acc = 0;
        for (int i = k0 / 256; i < (k0 + kc) / 256; i++)
        {
            byte* b = row + (long)typeSize * i;
            sbyte* q = a.Qs + (long)t * a.K + 256 * i;
            ScalesMinsK4(b + 4, sc, mn);
            int m = 0, n = 0;
            for (int j = 0; j < 8; j++)
            {
                byte* qs = b + (five ? 48 : 16) + 32 * (j / 2);
                int shift = 4 * (j & 1), part = 0;
                for (int l = 0; l < 32; l++)
                {
                    int code = (qs[l] >> shift) & 0xF;
                    if (five) code |= ((b[16 + l] >> j) & 1) << 4;
                    part += code * q[32 * j + l];
                }
                m += sc[j] * part;
                n += mn[j] * a.B32[(long)t * n32 + 8 * i + j];
            }
            float da = a.D[(long)t * nsbAll + i];
            acc = MathF.FusedMultiplyAdd(m, H(b) * da, acc);
            acc = MathF.FusedMultiplyAdd(-(float)n, H(b + 2) * da, acc);
        }
        return acc;
    }

    static float ScalarQ6_K(byte* row, int k0, int kc, in QuantRows a, int t)
    {
        int nsbAll = a.K / 256, n16 = a.K / 16;
        float acc = 0;
        for (int i = k0 / 256; i < (k0 + kc) / 256; i++)
        {
            byte* b = row + 210L * i;
            sbyte* q = a.Qs + (long)t * a.K + 256 * i;
            sbyte* sc = (sbyte*)(b + 192);
            int sum = 0, off = 0;
            for (int e = 0; e < 256; e++)
            {
                int n = e / 128, sh = (e % 128) / 32, l = e % 32;
                int lo = (b[64 * n + 32 * (sh & 1) + l] >> (sh >= 2 ? 4 : 0)) & 0xF;
                int hi = (b[128 + 32 * n + l] >> (2 * sh)) & 3;
                sum += sc[e / 16] * (lo | hi << 4) * q[e];
            }
            for (int g = 0; g < 16; g++) off += sc[g] * a.B16[(long)t * n16 + 16 * i + g];
            acc = MathF.FusedMultiplyAdd(sum - 32 * off, H(b + 208) * a.D[(long)t * nsbAll + i], acc);
        }
        return acc;
    }
}
