// Contract: the K-quant scale searches of Q4_K / Q5_K (make_qkx2_quants) and Q6_K (make_qx_quants) for eight
// sub-blocks at once, one sub-block per Vector256 lane. Each lane runs exactly the scalar search's float operations in
// the scalar order (no reassociation, no FMA, comparisons and blends in place of branches), so the results are the
// scalar twins' (KQuantSearch) bit for bit, NaN and Inf included; tests compare both on random and adversarial rows.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors.Quantization;

/// <summary>
/// Eight sub-block searches side by side. The scalar searches are dependency chains of float adds over 16 or 32
/// values, 20 candidate scales each, which made `llava convert --outtype q4_k_m` and `--load-4bit` run at about 3 MB
/// of output per second; across lanes the chains run in parallel and the order within each chain is unchanged.
/// </summary>
internal static class KQuantSearch8
{
    /// <summary>Tests pin the scalar path with false; null picks the vector path where Vector256 is accelerated.</summary>
    internal static bool? Force;

    public static bool Enabled => Force ?? Vector256.IsHardwareAccelerated;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> NearestInt(Vector256<float> f) =>
        (Vector256.AsInt32(f + Vector256.Create(12582912f)) & Vector256.Create(0x007fffff)) - Vector256.Create(0x00400000);

    /// <summary>
    /// Q4_K / Q5_K: per 32-value sub-block j of the 256 values in <paramref name="x"/>, the importance weights
    /// (rms of the sub-block + |x|) and make_qkx2_quants(32, nmax, x, weights, L, &amp;min, Laux, rmin, 0.1, nstep, false):
    /// scales[j], mins[j] (the search's theMin) and the levels L[32j..32j+31].
    /// </summary>
    public static void Qkx2(ReadOnlySpan<float> x, Span<byte> L, Span<float> scales, Span<float> mins, int nmax, float rmin, float rdelta, int nstep)
    {
        const int n = 32;
        if (nstep < 1) throw new ArgumentOutOfRangeException(nameof(nstep), "the eight-lane search needs at least one candidate step");
        // Transposed: xt[i] holds element i of each of the 8 sub-blocks.
        Span<Vector256<float>> xt = stackalloc Vector256<float>[n];
        Span<Vector256<float>> wt = stackalloc Vector256<float>[n];
        Span<Vector256<int>> lt = stackalloc Vector256<int>[n];
        Span<Vector256<int>> laux = stackalloc Vector256<int>[n];
        Gather(x, n, xt);

        var sumX2 = Vector256<float>.Zero;
        for (int i = 0; i < n; i++) sumX2 += xt[i] * xt[i];
        var avX = Vector256.Sqrt(sumX2 / Vector256.Create(32f));
        for (int i = 0; i < n; i++) wt[i] = avX + Vector256.Abs(xt[i]);

        var min = xt[0];
        var max = xt[0];
        var sumW = wt[0];
        var sumX = sumW * xt[0];
        for (int i = 1; i < n; i++)
        {
            min = Vector256.ConditionalSelect(Vector256.LessThan(xt[i], min), xt[i], min);
            max = Vector256.ConditionalSelect(Vector256.GreaterThan(xt[i], max), xt[i], max);
            sumW += wt[i];
            sumX += wt[i] * xt[i];
        }
        var zero = Vector256<float>.Zero;
        min = Vector256.ConditionalSelect(Vector256.GreaterThan(min, zero), zero, min);
        var flat = Vector256.Equals(max, min);   // lanes whose search stops at once: L = 0, scale 0

        var vnmax = Vector256.Create(nmax);
        var iscale = Vector256.Create((float)nmax) / (max - min);
        var scale = Vector256.Create(1f) / iscale;
        var bestError = zero;
        for (int i = 0; i < n; i++)
        {
            var l = Vector256.Max(Vector256<int>.Zero, Vector256.Min(vnmax, NearestInt(iscale * (xt[i] - min))));
            lt[i] = l;
            var diff = scale * Vector256.ConvertToSingle(l) + min - xt[i];
            bestError += wt[i] * (diff * diff);
        }
        for (int step = 0; step <= nstep; step++)
        {
            // (max - min) again every step: an accepted candidate moves min, as in C.
            iscale = Vector256.Create(rmin + rdelta * step + nmax) / (max - min);
            Vector256<float> sumL = zero, sumL2 = zero, sumXL = zero;
            for (int i = 0; i < n; i++)
            {
                var li = Vector256.Max(Vector256<int>.Zero, Vector256.Min(vnmax, NearestInt(iscale * (xt[i] - min))));
                laux[i] = li;
                var lf = Vector256.ConvertToSingle(li);
                var wl = wt[i] * lf;
                sumL += wl;
                sumL2 += wl * lf;
                sumXL += wl * xt[i];
            }
            var D = sumW * sumL2 - sumL * sumL;
            var ok = Vector256.AndNot(Vector256.GreaterThan(D, zero), flat);
            if (ok == Vector256<float>.Zero) continue;
            var thisScale = (sumW * sumXL - sumX * sumL) / D;
            var thisMin = (sumL2 * sumX - sumL * sumXL) / D;
            var positive = Vector256.GreaterThan(thisMin, zero);
            thisScale = Vector256.ConditionalSelect(positive, sumXL / sumL2, thisScale);
            thisMin = Vector256.ConditionalSelect(positive, zero, thisMin);
            var curError = zero;
            for (int i = 0; i < n; i++)
            {
                var diff = thisScale * Vector256.ConvertToSingle(laux[i]) + thisMin - xt[i];
                curError += wt[i] * (diff * diff);
            }
            var better = ok & Vector256.LessThan(curError, bestError);
            if (better == Vector256<float>.Zero) continue;
            var betterInt = better.AsInt32();
            for (int i = 0; i < n; i++) lt[i] = Vector256.ConditionalSelect(betterInt, laux[i], lt[i]);
            bestError = Vector256.ConditionalSelect(better, curError, bestError);
            scale = Vector256.ConditionalSelect(better, thisScale, scale);
            min = Vector256.ConditionalSelect(better, thisMin, min);
        }

        var flatInt = flat.AsInt32();
        scale = Vector256.ConditionalSelect(flat, zero, scale);
        var theMin = -min;
        scale.CopyTo(scales);
        theMin.CopyTo(mins);
        Span<int> lane = stackalloc int[8];
        for (int i = 0; i < n; i++)
        {
            Vector256.AndNot(lt[i], flatInt).CopyTo(lane);
            for (int j = 0; j < 8; j++) L[n * j + i] = (byte)lane[j];
        }
    }

    /// <summary>xt[i] = element i of each of the 8 sub-blocks of <paramref name="n"/> values in <paramref name="x"/>.</summary>
    static void Gather(ReadOnlySpan<float> x, int n, Span<Vector256<float>> xt)
    {
        for (int i = 0; i < n; i++)
            xt[i] = Vector256.Create(x[i], x[n + i], x[2 * n + i], x[3 * n + i], x[4 * n + i], x[5 * n + i], x[6 * n + i], x[7 * n + i]);
    }

    /// <summary>
    /// Q6_K: make_qx_quants(16, nmax, x, L, rmse_type 1, no weights) for the 8 sub-blocks of 16 values in
    /// <paramref name="x"/> (128 values): scales[j] and L[16j..16j+15] (stored as level + nmax).
    /// </summary>
    public static void Qx(ReadOnlySpan<float> x, Span<sbyte> L, Span<float> scales, int nmax)
    {
        const int n = 16;
        Span<Vector256<float>> xt = stackalloc Vector256<float>[n];
        Span<Vector256<int>> lt = stackalloc Vector256<int>[n];
        Span<Vector256<int>> cand = stackalloc Vector256<int>[n];
        Gather(x, n, xt);

        var zero = Vector256<float>.Zero;
        var max = zero;
        var amax = zero;
        for (int i = 0; i < n; i++)
        {
            var ax = Vector256.Abs(xt[i]);
            var gt = Vector256.GreaterThan(ax, amax);
            amax = Vector256.ConditionalSelect(gt, ax, amax);
            max = Vector256.ConditionalSelect(gt, xt[i], max);
        }
        var empty = Vector256.LessThan(amax, Vector256.Create(1e-15f));   // NaN amax is not < eps: searched, as in C

        var lo = Vector256.Create(-nmax);
        var hi = Vector256.Create(nmax - 1);
        var vnmax = Vector256.Create(nmax);
        var iscale = Vector256.Create((float)-nmax) / max;
        Vector256<float> sumlx = zero, suml2 = zero;
        for (int i = 0; i < n; i++)
        {
            var l = Vector256.Max(lo, Vector256.Min(hi, NearestInt(iscale * xt[i])));
            lt[i] = l + vnmax;
            var lf = Vector256.ConvertToSingle(l);
            var w = xt[i] * xt[i];
            sumlx += w * xt[i] * lf;
            suml2 += w * lf * lf;
        }
        var scale = Vector256.ConditionalSelect(Vector256.Equals(suml2, zero), zero, sumlx / suml2);
        var best = scale * sumlx;
        for (int s = -9; s <= 9; s++)
        {
            if (s == 0) continue;
            iscale = Vector256.Create(-(nmax + 0.1f * s)) / max;
            Vector256<float> slx = zero, sl2 = zero;
            for (int i = 0; i < n; i++)
            {
                var l = Vector256.Max(lo, Vector256.Min(hi, NearestInt(iscale * xt[i])));
                cand[i] = l;
                var lf = Vector256.ConvertToSingle(l);
                var w = xt[i] * xt[i];
                slx += w * xt[i] * lf;
                sl2 += w * lf * lf;
            }
            var better = Vector256.GreaterThan(sl2, zero) & Vector256.GreaterThan(slx * slx, best * sl2);
            if (better == Vector256<float>.Zero) continue;
            var betterInt = better.AsInt32();
            for (int i = 0; i < n; i++) lt[i] = Vector256.ConditionalSelect(betterInt, cand[i] + vnmax, lt[i]);
            var newScale = slx / sl2;
            scale = Vector256.ConditionalSelect(better, newScale, scale);
            best = Vector256.ConditionalSelect(better, newScale * slx, best);
        }

        var emptyInt = empty.AsInt32();
        Vector256.ConditionalSelect(empty, zero, scale).CopyTo(scales);
        Span<int> lane = stackalloc int[8];
        for (int i = 0; i < n; i++)
        {
            Vector256.AndNot(lt[i], emptyInt).CopyTo(lane);
            for (int j = 0; j < 8; j++) L[n * j + i] = (sbyte)lane[j];
        }
    }
}
