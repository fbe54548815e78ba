namespace Llava.Training.Optim;

/// <summary>
/// torch.optim.AdamW (decoupled weight decay), in the same order of operations as torch's single-tensor path:
/// p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
/// </summary>
public sealed class AdamW
{
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Eps { get; init; } = 1e-8;
    public IReadOnlyList<ParameterGroup> Groups { get; }
    /// <summary>Steps taken (torch's per-parameter `step`, identical for all parameters here).</summary>
    public int StepCount { get; set; }

    public AdamW(IReadOnlyList<ParameterGroup> groups) => Groups = groups;

    /// <summary>One update with base learning rate <paramref name="lr"/> (a group's own lr, if set, is scaled by the same schedule factor).</summary>
    public void Step(double lr, double scheduleFactor = 1)
    {
        StepCount++;
        double bc1 = 1 - Math.Pow(Beta1, StepCount);
        double bc2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, StepCount));
        foreach (var g in Groups)
        {
            float groupLr = (float)((g.LearningRate ?? lr) * scheduleFactor);
            float decay = (float)(1 - groupLr * g.WeightDecay);
            float b1 = (float)Beta1, b2 = (float)Beta2, eps = (float)Eps;
            float stepSize = (float)(groupLr / bc1);
            float bc2 = (float)bc2Sqrt;
            foreach (var p in g.Parameters)
            {
                p.ExpAvg ??= new float[p.Length];
                p.ExpAvgSq ??= new float[p.Length];
                var data = p.Data; var grad = p.Grad; var m = p.ExpAvg; var v = p.ExpAvgSq;
                for (int i = 0; i < data.Length; i++)
                {
                    float gr = grad[i];
                    if (g.WeightDecay != 0) data[i] *= decay;
                    m[i] += (gr - m[i]) * (1 - b1);                 // torch: exp_avg.lerp_(grad, 1 - beta1)
                    v[i] = v[i] * b2 + (1 - b2) * gr * gr;
                    float denom = MathF.Sqrt(v[i]) / bc2 + eps;
                    data[i] -= stepSize * m[i] / denom;
                }
            }
        }
    }
}
