// Contract: CrossEntropy forward (summed loss + count, −100 ignored), backward and the fused in-place variant match f64
// finite differences and the scalar reference, stay finite for huge logits, reject bad labels, and are thread-count deterministic.
using Llava.Tensors;

namespace Llava.Tensors.Tests.Backward;

public class CrossEntropyTests
{
    static double LossF64(double[] x, int[] labels, int rows, int vocab)
    {
        double l = 0;
        for (int r = 0; r < rows; r++)
        {
            if (labels[r] == CrossEntropy.IgnoreIndex) continue;
            double m = double.NegativeInfinity, s = 0;
            for (int i = 0; i < vocab; i++) m = Math.Max(m, x[r * vocab + i]);
            for (int i = 0; i < vocab; i++) s += Math.Exp(x[r * vocab + i] - m);
            l += Math.Log(s) + m - x[r * vocab + labels[r]];
        }
        return l;
    }

    static int[] Labels(Random rng, int rows, int vocab)
    {
        var l = new int[rows];
        for (int r = 0; r < rows; r++) l[r] = r % 3 == 1 ? CrossEntropy.IgnoreIndex : rng.Next(vocab);
        return l;
    }

    // Loss: per row an f32 max, f32 exps (≤ 2 ulp) summed in ≤ 1024-term f32 blocks (≲ √1024·u ≈ 2e-6 relative) then f64,
    // so each row's log-sum-exp is off by ≲ 3e-6 absolute; 1e-5 per supervised row bounds the sum.
    // Gradient: softmax·scale from those exps and the f64 sum: a few ulp of each probability, plus the onehot exactly.
    [Theory]
    [MemberData(nameof(TestUtil.Configs), MemberType = typeof(TestUtil))]
    public void MatchesFiniteDifferencesAndReference(int width, int threads)
    {
        TestUtil.With(width, threads, () =>
        {
            var rng = new Random(70);
            foreach (var (rows, vocab) in new[] { (1, 1), (4, 7), (5, 17), (3, 33), (7, 70), (300, 41), (4, 3001) })
            {
                float[] logits = TestUtil.Rand(rng, rows * vocab, 6f);
                int[] labels = Labels(rng, rows, vocab);
                int supervised = CrossEntropy.CountSupervised(labels);
                float scale = 1f / Math.Max(1, supervised);
                string what = $"{rows}x{vocab}";

                double loss = CrossEntropy.Forward(logits, labels, rows, vocab, out int count);
                double refLoss = BackwardReference.CrossEntropy(logits, labels, rows, vocab, out int refCount);
                Assert.Equal(supervised, count); Assert.Equal(supervised, refCount);
                Assert.True(Math.Abs(loss - refLoss) <= 1e-5 * count, $"loss {what}: {loss:R} vs {refLoss:R}");

                var expected = new float[rows * vocab];
                BackwardReference.CrossEntropyBackward(expected, logits, labels, rows, vocab, scale);
                var d = new float[rows * vocab];
                d.AsSpan().Fill(float.NaN);   // written, not accumulated: every element must be set
                CrossEntropy.Backward(d, logits, labels, rows, vocab, scale);
                GradCheck.Close(expected, d, i => 4e-7 * Math.Abs(expected[i]) + 1e-7 * scale, "dLogits " + what);

                float[] fused = GradCheck.Clone(logits);
                double fusedLoss = CrossEntropy.ForwardBackward(fused, labels, rows, vocab, scale, out int fusedCount);
                Assert.Equal(count, fusedCount);
                Assert.Equal(loss, fusedLoss);
                Assert.Equal(d, fused);

                if (rows * vocab > 400) continue;
                double[] xd = GradCheck.D(logits);
                double[] g = GradCheck.Fd(xd, () => scale * LossF64(xd, labels, rows, vocab));
                GradCheck.Accumulated([], d, g, 2e-6, "fd " + what);
                GradCheck.Accumulated([], expected, g, 1e-6, "fd ref " + what);
                for (int r = 0; r < rows; r++)
                    if (labels[r] == CrossEntropy.IgnoreIndex)
                        for (int i = 0; i < vocab; i++) Assert.Equal(0f, d[r * vocab + i]);
            }
        });
    }

    [Fact]
    public void HugeLogitsStayFiniteAndAllIgnoredGivesZero()
    {
        float[] logits = [1e30f, -1e30f, 0f, 80f, 90f, 100f];
        int[] labels = [1, 0];
        double loss = CrossEntropy.Forward(logits, labels, 2, 3, out int count);
        Assert.Equal(2, count);
        Assert.Equal(2.0 * 1e30f + (Math.Log(1 + Math.Exp(-10) + Math.Exp(-20)) + 20), loss, 1e15);   // 1e30f is 1.0000000150e30
        var d = new float[6];
        CrossEntropy.Backward(d, logits, labels, 2, 3, 0.5f);
        Assert.All(d, v => Assert.True(float.IsFinite(v)));
        Assert.Equal(-0.5f, d[1]); Assert.Equal(0.5f, d[0]);

        float[] x = [1f, 2f, 3f, 4f];
        Assert.Equal(0, CrossEntropy.ForwardBackward(x, [-100, -100], 2, 2, 1f, out int none));
        Assert.Equal(0, none);
        Assert.All(x, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void BadLabelThrowsBeforeWriting()
    {
        float[] x = [1f, 2f, 3f, 4f];
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => CrossEntropy.ForwardBackward(x, [0, 2], 2, 2, 1f, out _));
        Assert.Contains("row 1", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => CrossEntropy.Forward(x, [-1, 0], 2, 2, out _));
        Assert.Equal([1f, 2f, 3f, 4f], x);
    }

    [Fact]
    public void Deterministic()
    {
        var rng = new Random(71);
        int rows = 120, vocab = 2049;
        float[] logits = TestUtil.Rand(rng, rows * vocab, 8f);
        int[] labels = Labels(rng, rows, vocab);
        foreach (int width in new[] { 512, 256, 0 })
            GradCheck.Deterministic(width, () =>
            {
                float[] x = GradCheck.Clone(logits);
                double loss = CrossEntropy.ForwardBackward(x, labels, rows, vocab, 1f / 80, out _);
                return [x, [(float)loss, (float)(loss - (float)loss)]];
            }, $"cross entropy width={width}");
    }
}
