// Contract: scaled dot-product attention backward (GQA, causal/full, queryOffset), flash-style: probabilities recomputed
// from q, k and per-row log-sum-exp, never stored; dQ, dK, dV accumulated; SIMD, all workers, deterministic. Self-attention of
// Attention.DenseMinTokens..DenseAttention.MaxTokens goes to DenseAttention, as the forward does.
using System.Runtime.CompilerServices;

namespace Llava.Tensors;

/// <summary>
/// Backward of <see cref="Forward"/>. With P = softmax(scale·q·kᵀ) over the visible keys and O = P·V:
/// dV_j += Σ_rows P_rj·dO_r; dP_rj = dO_r·v_j; dS_rj = P_rj·(dP_rj − Δ_r) with Δ_r = dO_r·O_r;
/// dQ_r += scale·Σ_j dS_rj·k_j; dK_j += scale·Σ_rows dS_rj·q_r (rows = all query tokens × heads of the kv group).
/// <para>Memory plan: nothing of size tokens × kvLen is ever held. Three passes over K/V:
/// (1) per (token, kv head): Δ and the log-sum-exp L of each query row (the same online max/sum as the forward)
/// into 2·tokens·heads floats of caller-thread scratch; (2) per (token, kv head): scores for a block of KeyBlock keys
/// are recomputed, P = exp(s − L), and dQ accumulated (the item owns those dQ rows); (3) per (block of
/// KvKeyBlock keys, kv head): the item walks every query row that sees the block, recomputes P, and accumulates dK
/// and dV for its own keys. Each gradient element is therefore written by exactly one item, in a fixed order: no
/// atomics, no per-thread copies, and results independent of the thread count. Per-thread scratch is
/// group·KeyBlock (pass 1, 2) or KvKeyBlock (pass 3) floats. Cost: about 4x the forward's multiply-adds
/// (q·k three times, dO·v twice, plus the dQ, dK, dV products) in exchange for O(tokens·heads) memory.</para>
/// A query row that sees no key (its forward output is NaN) contributes nothing.
/// </summary>
public static unsafe partial class Attention
{
    const int KvKeyBlock = 64;   // keys per dK/dV item: its k, v, dK, dV rows (4·64·headDim floats) stay in L2

    /// <summary>
    /// dQ (tokens, heads, headDim) +=, dK and dV (kvLen, kvHeads, headDim) += the gradients of
    /// <see cref="Forward"/> given dOut and the forward's output. Empty dQ, or empty dK and dV, skip that pass.
    /// </summary>
    public static void Backward(Span<float> dQ, Span<float> dK, Span<float> dV, ReadOnlySpan<float> dOut, ReadOnlySpan<float> output,
                                ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
                                int tokens, int kvLen, int heads, int kvHeads, int headDim, float scale, bool causal, int queryOffset)
    {
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0) throw new ArgumentException($"heads ({heads}) must be a positive multiple of kvHeads ({kvHeads})");
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        ArgumentOutOfRangeException.ThrowIfNegative(kvLen);
        ArgumentOutOfRangeException.ThrowIfNegative(headDim);
        long qn = (long)tokens * heads * headDim, kn = (long)kvLen * kvHeads * headDim;
        if (q.Length < qn || output.Length < qn || dOut.Length < qn || k.Length < kn || v.Length < kn) throw new ArgumentException("span shorter than its shape");
        if (!dQ.IsEmpty && dQ.Length < qn) throw new ArgumentException("dQ shorter than its shape", nameof(dQ));
        if (!dK.IsEmpty && dK.Length < kn) throw new ArgumentException("dK shorter than its shape", nameof(dK));
        if (!dV.IsEmpty && dV.Length < kn) throw new ArgumentException("dV shorter than its shape", nameof(dV));
        if (tokens == 0 || kvLen == 0 || headDim == 0) return;
        if (UsesDense(tokens, kvLen, headDim, causal, queryOffset) && !dQ.IsEmpty && !dK.IsEmpty && !dV.IsEmpty)
        {
            DenseAttention.Backward(dQ, dK, dV, dOut, output, q, k, v, tokens, heads, kvHeads, headDim, scale, causal);
            return;
        }
        int group = heads / kvHeads;
        float[] stats = Scratch.Get(3, 2 * tokens * heads);   // caller thread; the jobs below use slot 1 only
        fixed (float* pst = stats) fixed (float* pdq = dQ) fixed (float* pdk = dK) fixed (float* pdv = dV) fixed (float* pdo = dOut)
        fixed (float* po = output) fixed (float* pq = q) fixed (float* pk = k) fixed (float* pv = v)
        {
            var job = new BackwardJob
            {
                DQ = dQ.IsEmpty ? null : pdq, DK = dK.IsEmpty ? null : pdk, DV = dV.IsEmpty ? null : pdv, DO = pdo, O = po, Q = pq, K = pk, V = pv,
                Lse = pst, Delta = pst + tokens * heads,
                Tokens = tokens, KvLen = kvLen, Heads = heads, KvHeads = kvHeads, HeadDim = headDim, Group = group,
                Scale = scale, Causal = causal, QueryOffset = queryOffset,
            };
            // Per (token, kv head) item: ~kvLen·headDim·group multiply-adds per pass; split once a thread gets ~32K.
            long perRowItem = Math.Max(1L, (long)kvLen * headDim * group);
            int minRowItems = (int)Math.Clamp(32768 / perRowItem, 1, int.MaxValue);
            job.Pass = 0;
            Workers.Run(ref job, tokens * kvHeads, minRowItems);
            if (job.DQ != null) { job.Pass = 1; Workers.Run(ref job, tokens * kvHeads, minRowItems); }
            if (job.DK != null || job.DV != null)
            {
                int keyBlocks = (kvLen + KvKeyBlock - 1) / KvKeyBlock;
                long perKeyItem = Math.Max(1L, (long)KvKeyBlock * tokens * headDim * group);
                job.Pass = 2;
                Workers.Run(ref job, keyBlocks * kvHeads, (int)Math.Clamp(32768 / perKeyItem, 1, int.MaxValue));
            }
        }
    }

    struct BackwardJob : IParallelJob
    {
        public float* DQ, DK, DV, DO, O, Q, K, V, Lse, Delta;
        public int Tokens, KvLen, Heads, KvHeads, HeadDim, Group, QueryOffset, Pass;
        public float Scale; public bool Causal;

        int Visible(int t) => Causal ? Math.Clamp(QueryOffset + t + 1, 0, KvLen) : KvLen;
        long RowOffset(int t, int h) => ((long)t * Heads + h) * HeadDim;
        long KeyOffset(int j, int g) => ((long)j * KvHeads + g) * HeadDim;

        public void Execute(int start, int end)
        {
            if (Pass == 2)
            {
                float[] buf = Scratch.Get(1, KvKeyBlock);
                fixed (float* p = buf)
                    for (int item = start; item < end; item++) KeyBlockGrad(item / KvHeads * KvKeyBlock, item % KvHeads, p);
                return;
            }
            float[] sBuf = Scratch.Get(1, Group * KeyBlock);
            fixed (float* s = sBuf)
                for (int item = start; item < end; item++)
                {
                    int t = item / KvHeads, g = item % KvHeads;
                    if (Pass == 0) RowStats(t, g, s); else QueryGrad(t, g, s);
                }
        }

        // Scores of the group's query rows of token t against keys [kb, kb+n) of kv head g: s[r*KeyBlock + j].
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Scores(int t, int g, int kb, int n, float* s)
        {
            for (int j = 0; j < n; j++)
            {
                float* kj = K + KeyOffset(kb + j, g);
                for (int r = 0; r < Group; r++) s[r * KeyBlock + j] = VecOps.Dot(Q + RowOffset(t, g * Group + r), kj, HeadDim) * Scale;
            }
        }

        // Pass 0: Δ = dO·O and L = log Σ_j exp(s_j) (as max + log of the shifted sum) for each row of token t, kv head g.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void RowStats(int t, int g, float* s)
        {
            int visible = Visible(t);
            for (int r = 0; r < Group; r++)
            {
                long row = (long)t * Heads + g * Group + r;
                Delta[row] = VecOps.Dot(DO + row * HeadDim, O + row * HeadDim, HeadDim);
                Lse[row] = float.NegativeInfinity;   // running max until the end
            }
            Span<float> sums = stackalloc float[Group];
            sums.Clear();
            for (int kb = 0; kb < visible; kb += KeyBlock)
            {
                int n = Math.Min(KeyBlock, visible - kb);
                Scores(t, g, kb, n, s);
                for (int r = 0; r < Group; r++)
                {
                    long row = (long)t * Heads + g * Group + r;
                    float* sr = s + r * KeyBlock;
                    float m = Lse[row], bm = VecOps.Max(sr, n);
                    float newMax = float.IsNaN(bm) || float.IsNaN(m) ? float.NaN : MathF.Max(m, bm);
                    if (newMax != m) sums[r] *= MathF.Exp(m - newMax);   // 0 on the first block (exp(-inf))
                    Lse[row] = newMax;
                    sums[r] += ExpShifted(sr, n, newMax);
                }
            }
            for (int r = 0; r < Group; r++)
            {
                long row = (long)t * Heads + g * Group + r;
                Lse[row] = visible == 0 ? float.NaN : Lse[row] + MathF.Log(sums[r]);
            }
        }

        // Pass 1: dQ_r += scale · Σ_j P_rj (dO_r·v_j − Δ_r) k_j for the rows of token t, kv head g.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void QueryGrad(int t, int g, float* s)
        {
            int visible = Visible(t);
            for (int kb = 0; kb < visible; kb += KeyBlock)
            {
                int n = Math.Min(KeyBlock, visible - kb);
                Scores(t, g, kb, n, s);
                for (int r = 0; r < Group; r++) ExpShifted(s + r * KeyBlock, n, Lse[(long)t * Heads + g * Group + r]);   // P
                for (int j = 0; j < n; j++)
                {
                    float* vj = V + KeyOffset(kb + j, g), kj = K + KeyOffset(kb + j, g);
                    for (int r = 0; r < Group; r++)
                    {
                        long row = (long)t * Heads + g * Group + r;
                        float p = s[r * KeyBlock + j];
                        if (p == 0f) continue;   // underflowed probability: no contribution (NaN != 0 still propagates)
                        float ds = p * (VecOps.Dot(DO + row * HeadDim, vj, HeadDim) - Delta[row]);
                        VecOps.Axpy(DQ + row * HeadDim, Scale * ds, kj, HeadDim);
                    }
                }
            }
        }

        // Pass 2: dK_j, dV_j for keys [j0, j0 + KvKeyBlock) of kv head g, over every query row that sees them.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void KeyBlockGrad(int j0, int g, float* p)
        {
            int nBlock = Math.Min(KvKeyBlock, KvLen - j0);
            int tStart = Causal ? Math.Max(0, j0 - QueryOffset) : 0;
            for (int t = tStart; t < Tokens; t++)
            {
                int n = Math.Min(nBlock, Visible(t) - j0);
                if (n <= 0) continue;
                for (int hr = 0; hr < Group; hr++)
                {
                    long row = (long)t * Heads + g * Group + hr;
                    float* qr = Q + row * HeadDim, dor = DO + row * HeadDim;
                    for (int j = 0; j < n; j++) p[j] = VecOps.Dot(qr, K + KeyOffset(j0 + j, g), HeadDim) * Scale;
                    ExpShifted(p, n, Lse[row]);
                    float delta = Delta[row];
                    for (int j = 0; j < n; j++)
                    {
                        float pj = p[j];
                        if (pj == 0f) continue;
                        long ko = KeyOffset(j0 + j, g);
                        if (DV != null) VecOps.Axpy(DV + ko, pj, dor, HeadDim);
                        if (DK != null)
                        {
                            float ds = pj * (VecOps.Dot(dor, V + ko, HeadDim) - delta);
                            VecOps.Axpy(DK + ko, Scale * ds, qr, HeadDim);
                        }
                    }
                }
            }
        }
    }
}
