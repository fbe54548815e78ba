// Contract: K-quants Q2_K..Q6_K and Q8_K (256-element super-blocks): Dequantize bit-exact to ggml's dequantize_row_*,
// QuantizeReference bit-exact to quantize_row_*_ref (make_qx_quants / make_q3_quants / make_qkx2_quants reproduced operation by operation).
using static Llava.Tensors.Quantization.QuantMath;

namespace Llava.Tensors.Quantization;

/// <summary>The scale searches of ggml's K-quant reference quantizers. Every float operation is kept in C's order
/// (no fused multiply-add, no reassociation), so the results match ggml bit for bit.</summary>
internal static class KQuantSearch
{
    const float GroupMaxEps = 1e-15f;

    /// <summary>make_qx_quants with rmse_type 1 and no importance weights (w = x²): symmetric, L in [0, 2·nmax).</summary>
    public static float MakeQxQuants(int n, int nmax, ReadOnlySpan<float> x, Span<sbyte> L)
    {
        float max = 0, amax = 0;
        for (int i = 0; i < n; i++)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < GroupMaxEps) { for (int i = 0; i < n; i++) L[i] = 0; return 0f; }
        float iscale = -nmax / max;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * x[i]);
            l = Math.Max(-nmax, Math.Min(nmax - 1, l));
            L[i] = (sbyte)(l + nmax);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
        float best = scale * sumlx;
        for (int @is = -9; @is <= 9; @is++)
        {
            if (@is == 0) continue;
            iscale = -(nmax + 0.1f * @is) / max;
            sumlx = suml2 = 0;
            for (int i = 0; i < n; i++)
            {
                int l = NearestInt(iscale * x[i]);
                l = Math.Max(-nmax, Math.Min(nmax - 1, l));
                float w = x[i] * x[i];
                sumlx += w * x[i] * l;
                suml2 += w * l * l;
            }
            if (suml2 > 0 && sumlx * sumlx > best * suml2)
            {
                for (int i = 0; i < n; i++)
                {
                    int l = NearestInt(iscale * x[i]);
                    L[i] = (sbyte)(nmax + Math.Max(-nmax, Math.Min(nmax - 1, l)));
                }
                scale = sumlx / suml2; best = scale * sumlx;
            }
        }
        return scale;
    }

    /// <summary>make_q3_quants with do_rmse: symmetric, then up to 5 rounds of coordinate descent; L in [0, 2·nmax).</summary>
    public static float MakeQ3Quants(int n, int nmax, ReadOnlySpan<float> x, Span<sbyte> L)
    {
        float max = 0, amax = 0;
        for (int i = 0; i < n; i++)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < GroupMaxEps) { for (int i = 0; i < n; i++) L[i] = 0; return 0f; }
        float iscale = -nmax / max;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * x[i]);
            l = Math.Max(-nmax, Math.Min(nmax - 1, l));
            L[i] = (sbyte)l;
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        for (int itry = 0; itry < 5; itry++)
        {
            int changed = 0;
            for (int i = 0; i < n; i++)
            {
                float w = x[i] * x[i];
                float slx = sumlx - w * x[i] * L[i];
                if (slx > 0)
                {
                    float sl2 = suml2 - w * L[i] * L[i];
                    int newL = NearestInt(x[i] * sl2 / slx);
                    newL = Math.Max(-nmax, Math.Min(nmax - 1, newL));
                    if (newL != L[i])
                    {
                        slx += w * x[i] * newL;
                        sl2 += w * newL * newL;
                        if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2)
                        {
                            L[i] = (sbyte)newL; sumlx = slx; suml2 = sl2;
                            changed++;
                        }
                    }
                }
            }
            if (changed == 0) break;
        }
        for (int i = 0; i < n; i++) L[i] = (sbyte)(L[i] + nmax);
        return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
    }

    /// <summary>make_qkx2_quants: asymmetric (scale, min) search over nstep+1 candidate scales; L in [0, nmax].</summary>
    public static float MakeQkx2Quants(int n, int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights, Span<byte> L,
        out float theMin, Span<byte> Laux, float rmin, float rdelta, int nstep, bool useMad)
    {
        float min = x[0], max = x[0];
        float sumW = weights[0];
        float sumX = sumW * x[0];
        for (int i = 1; i < n; i++)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            float w = weights[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0) min = 0;
        if (max == min)
        {
            for (int i = 0; i < n; i++) L[i] = 0;
            theMin = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * (x[i] - min));
            L[i] = (byte)Math.Max(0, Math.Min(nmax, l));
            float diff = scale * L[i] + min - x[i];
            diff = useMad ? MathF.Abs(diff) : diff * diff;
            bestError += weights[i] * diff;
        }
        if (nstep < 1) { theMin = -min; return scale; }
        for (int @is = 0; @is <= nstep; @is++)
        {
            iscale = (rmin + rdelta * @is + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < n; i++)
            {
                int l = NearestInt(iscale * (x[i] - min));
                l = Math.Max(0, Math.Min(nmax, l));
                Laux[i] = (byte)l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[i];
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0)
            {
                float thisScale = (sumW * sumXL - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float curError = 0;
                for (int i = 0; i < n; i++)
                {
                    float diff = thisScale * Laux[i] + thisMin - x[i];
                    diff = useMad ? MathF.Abs(diff) : diff * diff;
                    curError += weights[i] * diff;
                }
                if (curError < bestError)
                {
                    for (int i = 0; i < n; i++) L[i] = Laux[i];
                    bestError = curError;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
    }

    /// <summary>get_scale_min_k4: 6-bit scale and min of sub-block j from the 12 packed bytes of Q4_K / Q5_K.</summary>
    public static void ScaleMinK4(int j, ReadOnlySpan<byte> q, out int d, out int m)
    {
        if (j < 4) { d = q[j] & 63; m = q[j + 4] & 63; }
        else
        {
            d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }

    /// <summary>Packs eight 6-bit (scale, min) pairs into 12 bytes as Q4_K / Q5_K store them.</summary>
    public static void PackScaleMinK4(Span<byte> s, int j, byte ls, byte lm)
    {
        if (j < 4) { s[j] = ls; s[j + 4] = lm; }
        else
        {
            s[j + 4] = (byte)((ls & 0xF) | ((lm & 0xF) << 4));
            s[j - 4] |= (byte)((ls >> 4) << 6);
            s[j] |= (byte)((lm >> 4) << 6);
        }
    }

    /// <summary>Packs 256 2-bit values as Q2_K / Q3_K store them: byte j/4+l of each 128-half holds L[j+l+32·s] at bits 2s.</summary>
    public static void Pack2Bit(ReadOnlySpan<byte> L, Span<byte> qs)
    {
        for (int j = 0; j < 256; j += 128)
            for (int l = 0; l < 32; l++)
                qs[j / 4 + l] = (byte)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
}

/// <summary>Q2_K: {u8 scales[16] (low nibble scale, high nibble min); u8 qs[64]; fp16 d; fp16 dmin}; x = d·sc·q − dmin·m.</summary>
public static class Q2_K
{
    public const int BlockSize = 256, TypeSize = 84;
    const int OffScales = 0, OffQs = 16, OffD = 80, OffDmin = 82;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        int nb = Blocks(GgmlType.Q2_K, dst.Length, blocks.Length, nameof(blocks));
        for (int i = 0; i < nb; i++)
        {
            var b = blocks.Slice(i * TypeSize, TypeSize);
            var y = dst.Slice(i * BlockSize, BlockSize);
            float d = Half(b, OffD), min = Half(b, OffDmin);
            int yi = 0, @is = 0;
            for (int n = 0; n < 256; n += 128)
            {
                var q = b.Slice(OffQs + n / 4, 32);
                for (int shift = 0; shift < 8; shift += 2)
                {
                    int sc = b[OffScales + @is++];
                    float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                    for (int l = 0; l < 16; l++) y[yi++] = dl * ((q[l] >> shift) & 3) - ml;
                    sc = b[OffScales + @is++];
                    dl = d * (sc & 0xF); ml = min * (sc >> 4);
                    for (int l = 0; l < 16; l++) y[yi++] = dl * ((q[l + 16] >> shift) & 3) - ml;
                }
            }
        }
    }

    public static void QuantizeReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        int nb = Blocks(GgmlType.Q2_K, src.Length, dst.Length, nameof(dst));
        Span<byte> L = stackalloc byte[256], Laux = stackalloc byte[16];
        Span<float> weights = stackalloc float[16], mins = stackalloc float[16], scales = stackalloc float[16];
        const float q4scale = 15f;
        for (int i = 0; i < nb; i++)
        {
            var x = src.Slice(i * BlockSize, BlockSize);
            var b = dst.Slice(i * TypeSize, TypeSize);
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < 16; j++)
            {
                for (int l = 0; l < 16; l++) weights[l] = MathF.Abs(x[16 * j + l]);
                scales[j] = KQuantSearch.MakeQkx2Quants(16, 3, x.Slice(16 * j, 16), weights, L.Slice(16 * j, 16), out mins[j], Laux, -0.5f, 0.1f, 15, true);
                if (scales[j] > maxScale) maxScale = scales[j];
                if (mins[j] > maxMin) maxMin = mins[j];
            }
            if (maxScale > 0)
            {
                float iscale = q4scale / maxScale;
                for (int j = 0; j < 16; j++) b[OffScales + j] = (byte)NearestInt(iscale * scales[j]);
                SetHalf(b, OffD, maxScale / q4scale);
            }
            else
            {
                for (int j = 0; j < 16; j++) b[OffScales + j] = 0;
                SetHalf(b, OffD, 0f);
            }
            if (maxMin > 0)
            {
                float iscale = q4scale / maxMin;
                for (int j = 0; j < 16; j++) b[OffScales + j] |= (byte)(NearestInt(iscale * mins[j]) << 4);
                SetHalf(b, OffDmin, maxMin / q4scale);
            }
            else SetHalf(b, OffDmin, 0f);
            float dAll = Half(b, OffD), mAll = Half(b, OffDmin);
            for (int j = 0; j < 16; j++)
            {
                float d = dAll * (b[OffScales + j] & 0xF);
                if (d == 0) continue;
                float dm = mAll * (b[OffScales + j] >> 4);
                for (int ii = 0; ii < 16; ii++)
                {
                    int l = NearestInt((x[16 * j + ii] + dm) / d);
                    L[16 * j + ii] = (byte)Math.Max(0, Math.Min(3, l));
                }
            }
            KQuantSearch.Pack2Bit(L, b.Slice(OffQs, 64));
        }
    }
}

/// <summary>Q3_K: {u8 hmask[32]; u8 qs[64]; u8 scales[12] (16 6-bit scales); fp16 d}; x = d·(sc−32)·(q − 4·!hbit).</summary>
public static class Q3_K
{
    public const int BlockSize = 256, TypeSize = 110;
    const int OffHmask = 0, OffQs = 32, OffScales = 96, OffD = 108;

    /// <summary>The 16 signed 6-bit sub-block scales (already minus 32).</summary>
    internal static void UnpackScales(ReadOnlySpan<byte> s, Span<sbyte> scales)
    {
        for (int j = 0; j < 16; j++)
        {
            int low = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
            int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
            scales[j] = (sbyte)((low | high << 4) - 32);
        }
    }

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        int nb = Blocks(GgmlType.Q3_K, dst.Length, blocks.Length, nameof(blocks));
        Span<sbyte> scales = stackalloc sbyte[16];
        for (int i = 0; i < nb; i++)
        {
            var b = blocks.Slice(i * TypeSize, TypeSize);
            var y = dst.Slice(i * BlockSize, BlockSize);
            float dAll = Half(b, OffD);
            UnpackScales(b.Slice(OffScales, 12), scales);
            var hm = b.Slice(OffHmask, 32);
            int yi = 0, @is = 0, m = 1;
            for (int n = 0; n < 256; n += 128)
            {
                var q = b.Slice(OffQs + n / 4, 32);
                for (int shift = 0; shift < 8; shift += 2, m <<= 1)
                {
                    float dl = dAll * scales[@is++];
                    for (int l = 0; l < 16; l++) y[yi++] = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) != 0 ? 0 : 4));
                    dl = dAll * scales[@is++];
                    for (int l = 0; l < 16; l++) y[yi++] = dl * (((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) != 0 ? 0 : 4));
                }
            }
        }
    }

    public static void QuantizeReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        int nb = Blocks(GgmlType.Q3_K, src.Length, dst.Length, nameof(dst));
        Span<sbyte> L = stackalloc sbyte[256];
        Span<float> scales = stackalloc float[16];
        Span<byte> Lu = stackalloc byte[256];   // outside the block loop: a stackalloc inside it would grow the stack per block
        for (int i = 0; i < nb; i++)
        {
            var x = src.Slice(i * BlockSize, BlockSize);
            var b = dst.Slice(i * TypeSize, TypeSize);
            float maxScale = 0, amax = 0;
            for (int j = 0; j < 16; j++)
            {
                scales[j] = KQuantSearch.MakeQ3Quants(16, 4, x.Slice(16 * j, 16), L.Slice(16 * j, 16));
                float scale = MathF.Abs(scales[j]);
                if (scale > amax) { amax = scale; maxScale = scales[j]; }
            }
            var s = b.Slice(OffScales, 12);
            s.Clear();
            if (maxScale != 0)
            {
                float iscale = -32f / maxScale;
                for (int j = 0; j < 16; j++)
                {
                    int l = (sbyte)NearestInt(iscale * scales[j]);
                    l = Math.Max(-32, Math.Min(31, l)) + 32;
                    if (j < 8) s[j] = (byte)(l & 0xF);
                    else s[j - 8] |= (byte)((l & 0xF) << 4);
                    l >>= 4;
                    s[j % 4 + 8] |= (byte)(l << (2 * (j / 4)));
                }
                SetHalf(b, OffD, 1 / iscale);
            }
            else SetHalf(b, OffD, 0f);
            float dAll = Half(b, OffD);
            for (int j = 0; j < 16; j++)
            {
                int low = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
                int sc = (sbyte)((low | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
                float d = dAll * sc;
                if (d == 0) continue;
                for (int ii = 0; ii < 16; ii++)
                {
                    int l = NearestInt(x[16 * j + ii] / d);
                    L[16 * j + ii] = (sbyte)(Math.Max(-4, Math.Min(3, l)) + 4);
                }
            }
            var hmask = b.Slice(OffHmask, 32);
            hmask.Clear();
            int m = 0;
            byte hm = 1;
            for (int j = 0; j < 256; j++)
            {
                int v = L[j];
                if (v > 3) { hmask[m] |= hm; v -= 4; }
                Lu[j] = (byte)v;
                if (++m == 32) { m = 0; hm <<= 1; }
            }
            KQuantSearch.Pack2Bit(Lu, b.Slice(OffQs, 64));
        }
    }
}

/// <summary>Q4_K: {fp16 d; fp16 dmin; u8 scales[12] (8 6-bit scales and mins); u8 qs[128]}; x = d·sc·q − dmin·m.</summary>
public static class Q4_K
{
    public const int BlockSize = 256, TypeSize = 144;
    const int OffD = 0, OffDmin = 2, OffScales = 4, OffQs = 16;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        int nb = Blocks(GgmlType.Q4_K, dst.Length, blocks.Length, nameof(blocks));
        for (int i = 0; i < nb; i++)
        {
            var b = blocks.Slice(i * TypeSize, TypeSize);
            var y = dst.Slice(i * BlockSize, BlockSize);
            float d = Half(b, OffD), min = Half(b, OffDmin);
            var sc = b.Slice(OffScales, 12);
            int yi = 0;
            for (int j = 0, @is = 0; j < 256; j += 64, @is += 2)
            {
                var q = b.Slice(OffQs + j / 2, 32);
                KQuantSearch.ScaleMinK4(@is, sc, out int s1, out int m1i);
                float d1 = d * s1, m1 = min * m1i;
                KQuantSearch.ScaleMinK4(@is + 1, sc, out int s2, out int m2i);
                float d2 = d * s2, m2 = min * m2i;
                for (int l = 0; l < 32; l++) y[yi++] = d1 * (q[l] & 0xF) - m1;
                for (int l = 0; l < 32; l++) y[yi++] = d2 * (q[l] >> 4) - m2;
            }
        }
    }

    public static void QuantizeReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        int nb = Blocks(GgmlType.Q4_K, src.Length, dst.Length, nameof(dst));
        Span<byte> L = stackalloc byte[256];
        for (int i = 0; i < nb; i++)
            KQuantAsym.Quantize(src.Slice(i * BlockSize, BlockSize), dst.Slice(i * TypeSize, TypeSize), L, nmax: 15, rmin: -1f, nstep: 20);
    }
}

/// <summary>Shared part of the Q4_K / Q5_K reference quantizers (they differ in nmax, the search range and the packing).</summary>
internal static class KQuantAsym
{
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> b, Span<byte> L, int nmax, float rmin, int nstep)
    {
        Span<byte> Laux = stackalloc byte[32];
        Span<float> weights = stackalloc float[32], mins = stackalloc float[8], scales = stackalloc float[8];
        float maxScale = 0, maxMin = 0;
        if (KQuantSearch8.Enabled)
        {
            KQuantSearch8.Qkx2(x, L, scales, mins, nmax, rmin, 0.1f, nstep);
            for (int j = 0; j < 8; j++)
            {
                if (scales[j] > maxScale) maxScale = scales[j];
                if (mins[j] > maxMin) maxMin = mins[j];
            }
        }
        else for (int j = 0; j < 8; j++)
        {
            float sumX2 = 0;
            for (int l = 0; l < 32; l++) sumX2 += x[32 * j + l] * x[32 * j + l];
            float avX = MathF.Sqrt(sumX2 / 32);
            for (int l = 0; l < 32; l++) weights[l] = avX + MathF.Abs(x[32 * j + l]);
            scales[j] = KQuantSearch.MakeQkx2Quants(32, nmax, x.Slice(32 * j, 32), weights, L.Slice(32 * j, 32), out mins[j], Laux, rmin, 0.1f, nstep, false);
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        float invScale = maxScale > 0 ? 63f / maxScale : 0f;
        float invMin = maxMin > 0 ? 63f / maxMin : 0f;
        var s = b.Slice(4, 12);
        for (int j = 0; j < 8; j++)
        {
            byte ls = (byte)NearestInt(invScale * scales[j]);
            byte lm = (byte)NearestInt(invMin * mins[j]);
            ls = Math.Min((byte)63, ls);
            lm = Math.Min((byte)63, lm);
            KQuantSearch.PackScaleMinK4(s, j, ls, lm);
        }
        SetHalf(b, 0, maxScale / 63f);
        SetHalf(b, 2, maxMin / 63f);
        float dAll = Half(b, 0), mAll = Half(b, 2);
        for (int j = 0; j < 8; j++)
        {
            KQuantSearch.ScaleMinK4(j, s, out int sc, out int m);
            float d = dAll * sc;
            if (d == 0) continue;
            float dm = mAll * m;
            for (int ii = 0; ii < 32; ii++)
            {
                int l = NearestInt((x[32 * j + ii] + dm) / d);
                L[32 * j + ii] = (byte)Math.Max(0, Math.Min(nmax, l));
            }
        }
        if (nmax == 15)
        {
            var q = b.Slice(16, 128);
            for (int j = 0; j < 256; j += 64)
                for (int l = 0; l < 32; l++) q[j / 2 + l] = (byte)(L[j + l] | (L[j + l + 32] << 4));
        }
        else
        {
            var qh = b.Slice(16, 32);
            var ql = b.Slice(48, 128);
            qh.Clear();
            byte m1 = 1, m2 = 2;
            for (int n = 0; n < 256; n += 64)
            {
                for (int j = 0; j < 32; j++)
                {
                    int l1 = L[n + j];
                    if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                    int l2 = L[n + j + 32];
                    if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                    ql[n / 2 + j] = (byte)(l1 | (l2 << 4));
                }
                m1 <<= 2; m2 <<= 2;
            }
        }
    }
}

/// <summary>Q5_K: {fp16 d; fp16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}; x = d·sc·q − dmin·m with 5-bit q.</summary>
public static class Q5_K
{
    public const int BlockSize = 256, TypeSize = 176;
    const int OffD = 0, OffDmin = 2, OffScales = 4, OffQh = 16, OffQs = 48;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        int nb = Blocks(GgmlType.Q5_K, dst.Length, blocks.Length, nameof(blocks));
        for (int i = 0; i < nb; i++)
        {
            var b = blocks.Slice(i * TypeSize, TypeSize);
            var y = dst.Slice(i * BlockSize, BlockSize);
            float d = Half(b, OffD), min = Half(b, OffDmin);
            var sc = b.Slice(OffScales, 12);
            var qh = b.Slice(OffQh, 32);
            int yi = 0, u1 = 1, u2 = 2;
            for (int j = 0, @is = 0; j < 256; j += 64, @is += 2, u1 <<= 2, u2 <<= 2)
            {
                var ql = b.Slice(OffQs + j / 2, 32);
                KQuantSearch.ScaleMinK4(@is, sc, out int s1, out int m1i);
                float d1 = d * s1, m1 = min * m1i;
                KQuantSearch.ScaleMinK4(@is + 1, sc, out int s2, out int m2i);
                float d2 = d * s2, m2 = min * m2i;
                for (int l = 0; l < 32; l++) y[yi++] = d1 * ((ql[l] & 0xF) + ((qh[l] & u1) != 0 ? 16 : 0)) - m1;
                for (int l = 0; l < 32; l++) y[yi++] = d2 * ((ql[l] >> 4) + ((qh[l] & u2) != 0 ? 16 : 0)) - m2;
            }
        }
    }

    public static void QuantizeReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        int nb = Blocks(GgmlType.Q5_K, src.Length, dst.Length, nameof(dst));
        Span<byte> L = stackalloc byte[256];
        for (int i = 0; i < nb; i++)
            KQuantAsym.Quantize(src.Slice(i * BlockSize, BlockSize), dst.Slice(i * TypeSize, TypeSize), L, nmax: 31, rmin: -0.5f, nstep: 15);
    }
}

/// <summary>Q6_K: {u8 ql[128]; u8 qh[64]; i8 scales[16]; fp16 d}; x = d·sc·(q − 32) with 6-bit q.</summary>
public static class Q6_K
{
    public const int BlockSize = 256, TypeSize = 210;
    const int OffQl = 0, OffQh = 128, OffScales = 192, OffD = 208;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        int nb = Blocks(GgmlType.Q6_K, dst.Length, blocks.Length, nameof(blocks));
        for (int i = 0; i < nb; i++)
        {
            var b = blocks.Slice(i * TypeSize, TypeSize);
            var y = dst.Slice(i * BlockSize, BlockSize);
            float d = Half(b, OffD);
            for (int n = 0; n < 2; n++)
            {
                var ql = b.Slice(OffQl + 64 * n, 64);
                var qh = b.Slice(OffQh + 32 * n, 32);
                int sc = OffScales + 8 * n;
                var yy = y.Slice(128 * n, 128);
                for (int l = 0; l < 32; l++)
                {
                    int @is = l / 16;
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    yy[l] = d * (sbyte)b[sc + @is] * q1;
                    yy[l + 32] = d * (sbyte)b[sc + @is + 2] * q2;
                    yy[l + 64] = d * (sbyte)b[sc + @is + 4] * q3;
                    yy[l + 96] = d * (sbyte)b[sc + @is + 6] * q4;
                }
            }
        }
    }

    public static void QuantizeReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        int nb = Blocks(GgmlType.Q6_K, src.Length, dst.Length, nameof(dst));
        Span<sbyte> L = stackalloc sbyte[256];
        Span<float> scales = stackalloc float[16];
        for (int i = 0; i < nb; i++)
        {
            var x = src.Slice(i * BlockSize, BlockSize);
            var b = dst.Slice(i * TypeSize, TypeSize);
            float maxScale = 0, maxAbsScale = 0;
            bool lanes = KQuantSearch8.Enabled;   // read once: tests flip it while other threads quantize
            if (lanes)
            {
                KQuantSearch8.Qx(x[..128], L[..128], scales[..8], 32);
                KQuantSearch8.Qx(x[128..], L[128..], scales[8..], 32);
            }
            for (int ib = 0; ib < 16; ib++)
            {
                float scale = lanes ? scales[ib] : KQuantSearch.MakeQxQuants(16, 32, x.Slice(16 * ib, 16), L.Slice(16 * ib, 16));
                scales[ib] = scale;
                float abs = MathF.Abs(scale);
                if (abs > maxAbsScale) { maxAbsScale = abs; maxScale = scale; }
            }
            if (maxAbsScale < 1e-15f)
            {
                b.Clear();
                continue;
            }
            float iscale = -128f / maxScale;
            SetHalf(b, OffD, 1 / iscale);
            for (int ib = 0; ib < 16; ib++) b[OffScales + ib] = (byte)(sbyte)Math.Min(127, NearestInt(iscale * scales[ib]));
            float dAll = Half(b, OffD);
            for (int j = 0; j < 16; j++)
            {
                float d = dAll * (sbyte)b[OffScales + j];
                if (d == 0) continue;
                for (int ii = 0; ii < 16; ii++)
                {
                    int l = NearestInt(x[16 * j + ii] / d);
                    L[16 * j + ii] = (sbyte)(Math.Max(-32, Math.Min(31, l)) + 32);
                }
            }
            for (int n = 0; n < 2; n++)
            {
                int j = 128 * n;
                var ql = b.Slice(OffQl + 64 * n, 64);
                var qh = b.Slice(OffQh + 32 * n, 32);
                for (int l = 0; l < 32; l++)
                {
                    int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                    ql[l] = (byte)(q1 | (q3 << 4));
                    ql[l + 32] = (byte)(q2 | (q4 << 4));
                    qh[l] = (byte)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
                }
            }
        }
    }
}

/// <summary>Q8_K: {f32 d; i8 qs[256]; i16 bsums[16]}; x = d·q. ggml's activation format for K-quant dot products.</summary>
public static class Q8_K
{
    public const int BlockSize = 256, TypeSize = 292;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        int nb = Blocks(GgmlType.Q8_K, dst.Length, blocks.Length, nameof(blocks));
        for (int i = 0; i < nb; i++)
        {
            var b = blocks.Slice(i * TypeSize, TypeSize);
            float d = BitConverter.ToSingle(b);
            for (int j = 0; j < 256; j++) dst[i * 256 + j] = d * (sbyte)b[4 + j];
        }
    }

    /// <summary>quantize_row_q8_K_ref. (For an all-zero block ggml leaves bsums unwritten; we write zeros.)</summary>
    public static void QuantizeReference(ReadOnlySpan<float> src, Span<byte> dst)
    {
        int nb = Blocks(GgmlType.Q8_K, src.Length, dst.Length, nameof(dst));
        for (int i = 0; i < nb; i++)
        {
            var x = src.Slice(i * BlockSize, BlockSize);
            var b = dst.Slice(i * TypeSize, TypeSize);
            float max = 0, amax = 0;
            for (int j = 0; j < 256; j++)
            {
                float ax = MathF.Abs(x[j]);
                if (ax > amax) { amax = ax; max = x[j]; }
            }
            if (amax == 0) { b.Clear(); continue; }
            float iscale = -127f / max;
            for (int j = 0; j < 256; j++) b[4 + j] = (byte)(sbyte)Math.Min(127, NearestInt(iscale * x[j]));
            for (int j = 0; j < 16; j++)
            {
                int sum = 0;
                for (int ii = 0; ii < 16; ii++) sum += (sbyte)b[4 + j * 16 + ii];
                QuantMath.WriteU16(b, 260 + 2 * j, (ushort)(short)sum);
            }
            BitConverter.TryWriteBytes(b, 1 / iscale);
        }
    }
}
