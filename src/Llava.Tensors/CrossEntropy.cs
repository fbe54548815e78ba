// Contract: token cross-entropy over logits (rows, vocab) with int labels (−100 = ignore): summed loss and supervised count
// (f64 accumulation), gradient (softmax − onehot)·scale, and a fused in-place variant that keeps no (rows, vocab) buffer; SIMD, rows across workers, deterministic.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

/// <summary>
/// loss_t = logsumexp(logits[t]) − logits[t, label_t] for every row whose label is not <see cref="IgnoreIndex"/>.
/// The forward returns the SUM over supervised rows and their count: LLaVA's loss is the mean over all supervised
/// positions of the whole batch, so the caller divides (and passes scale = 1/total count to the backward).
/// Per row: max-subtracted exp in f32 (SIMD), the sum of exps accumulated in f64 per 1024-element block, and the row
/// loss log(Σ) + max − logit[label] formed in f64; row losses are summed in row order, so the total does not depend
/// on the thread count. Labels outside [0, vocab) other than −100 throw (naming the row) before anything is written.
/// </summary>
public static unsafe class CrossEntropy
{
    public const int IgnoreIndex = -100;

    /// <summary>Number of labels that are not <see cref="IgnoreIndex"/>.</summary>
    public static int CountSupervised(ReadOnlySpan<int> labels)
    {
        int n = 0;
        foreach (int l in labels) if (l != IgnoreIndex) n++;
        return n;
    }

    /// <summary>Summed loss over supervised rows; <paramref name="count"/> = number of supervised rows.</summary>
    public static double Forward(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, int rows, int vocab, out int count)
    {
        Validate(logits.Length, labels, rows, vocab);
        fixed (float* px = logits) fixed (int* pl = labels) return Run(px, null, pl, rows, vocab, 0f, out count);
    }

    /// <summary>dLogits (rows, vocab) = (softmax(logits) − onehot(label))·scale for supervised rows, 0 for ignored rows
    /// (written, not accumulated). dLogits may be the logits buffer itself.</summary>
    public static void Backward(Span<float> dLogits, ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, int rows, int vocab, float scale)
    {
        Validate(logits.Length, labels, rows, vocab);
        if (dLogits.Length < (long)rows * vocab) throw new ArgumentException("dLogits shorter than rows*vocab", nameof(dLogits));
        fixed (float* px = logits) fixed (float* pd = dLogits) fixed (int* pl = labels) Run(px, pd, pl, rows, vocab, scale, out _);
    }

    /// <summary>Fused forward + backward in place: returns the summed loss and overwrites <paramref name="logits"/> with
    /// dLogits = (softmax − onehot)·scale (0 on ignored rows). One exp per element; no extra (rows, vocab) buffer.</summary>
    public static double ForwardBackward(Span<float> logits, ReadOnlySpan<int> labels, int rows, int vocab, float scale, out int count)
    {
        Validate(logits.Length, labels, rows, vocab);
        fixed (float* px = logits) fixed (int* pl = labels) return Run(px, px, pl, rows, vocab, scale, out count);
    }

    static void Validate(int logitsLength, ReadOnlySpan<int> labels, int rows, int vocab)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfLessThan(vocab, 1);
        if (logitsLength < (long)rows * vocab) throw new ArgumentException("logits shorter than rows*vocab");
        if (labels.Length < rows) throw new ArgumentException("labels shorter than rows", nameof(labels));
        for (int r = 0; r < rows; r++)
            if (labels[r] != IgnoreIndex && (uint)labels[r] >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(labels), labels[r], $"label {labels[r]} at row {r} out of range [0, {vocab}) and not {IgnoreIndex}");
    }

    [ThreadStatic] static double[]? rowLossBuffer;

    static double Run(float* x, float* d, int* labels, int rows, int vocab, float scale, out int count)
    {
        count = 0;
        if (rows == 0) return 0;
        var buf = rowLossBuffer;
        if (buf == null || buf.Length < rows) rowLossBuffer = buf = GC.AllocateUninitializedArray<double>(Math.Max(rows, 2 * (buf?.Length ?? 0)), pinned: true);
        fixed (double* loss = buf)
        {
            var job = new Job { X = x, D = d, Labels = labels, Loss = loss, Vocab = vocab, Scale = scale };
            Workers.Run(ref job, rows, Math.Max(1, 16384 / vocab));
            double total = 0;
            for (int r = 0; r < rows; r++)
                if (labels[r] != IgnoreIndex) { total += loss[r]; count++; }
            return total;
        }
    }

    struct Job : IParallelJob
    {
        public float* X, D; public int* Labels; public double* Loss; public int Vocab; public float Scale;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            for (int r = start; r < end; r++)
            {
                float* x = X + (long)r * Vocab, d = D == null ? null : D + (long)r * Vocab;
                int label = Labels[r];
                if (label == IgnoreIndex)
                {
                    Loss[r] = 0;
                    if (d != null) new Span<float>(d, Vocab).Clear();
                    continue;
                }
                float xl = x[label];   // read before d (which may alias x) is overwritten
                float max = VecOps.Max(x, Vocab);
                double sum = ExpSum(x, d, Vocab, max);
                Loss[r] = Math.Log(sum) + max - xl;
                if (d == null) continue;
                VecOps.Scale(d, (float)(Scale / sum), Vocab);
                d[label] -= Scale;
            }
        }
    }

    const int SumBlock = 1024;

    /// <summary>Σ exp(x[i] − max), f32 exps summed per block in f32 lanes, blocks in f64; stores the exps in dst when not null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static double ExpSum(float* x, float* dst, int n, float max)
    {
        double total = 0;
        for (int b0 = 0; b0 < n; b0 += SumBlock)
        {
            int b1 = Math.Min(n, b0 + SumBlock), i = b0;
            float s = 0;
            if (Simd.Width >= 512)
            {
                Vector512<float> vm = Vector512.Create(max), acc = default;
                for (; i + 16 <= b1; i += 16)
                {
                    var e = Vector512.Exp(Vector512.Load(x + i) - vm);
                    if (dst != null) e.Store(dst + i);
                    acc += e;
                }
                s = Vector512.Sum(acc);
            }
            else if (Simd.Width >= 256)
            {
                Vector256<float> vm = Vector256.Create(max), acc = default;
                for (; i + 8 <= b1; i += 8)
                {
                    var e = Vector256.Exp(Vector256.Load(x + i) - vm);
                    if (dst != null) e.Store(dst + i);
                    acc += e;
                }
                s = Vector256.Sum(acc);
            }
            for (; i < b1; i++)
            {
                float e = MathF.Exp(x[i] - max);
                if (dst != null) dst[i] = e;
                s += e;
            }
            total += s;
        }
        return total;
    }
}
