using Llava.Training.Optim;

namespace Llava.Tests;

/// <summary>AdamW, the cosine-with-warmup schedule and clipping against hand-derived values of torch's formulas.</summary>
public sealed class OptimizerTests
{
    [Fact]
    public void AdamW_FirstStep_MovesEachWeightByLr_TimesSignOfGradient()
    {
        // After one step m̂ = g and v̂ = g², so the update is lr·g/(|g| + ε) ≈ lr·sign(g).
        var p = new Parameter("w", [3], [1f, 2f, 3f]);
        float[] grads = [0.5f, -2f, 1e-3f];
        grads.CopyTo(p.Grad, 0);
        var opt = new AdamW([new ParameterGroup([p], WeightDecay: 0)]);
        opt.Step(0.1);
        Assert.Equal(0.9f, p.Data[0], 5);
        Assert.Equal(2.1f, p.Data[1], 5);
        Assert.Equal(2.9f, p.Data[2], 4);
    }

    [Fact]
    public void AdamW_TwoSteps_MatchDoublePrecisionFormula()
    {
        var p = new Parameter("w", [1], [0.7f]);
        var opt = new AdamW([new ParameterGroup([p], WeightDecay: 0.1)]);
        double w = 0.7, m = 0, v = 0;
        double[] gs = [0.3, -0.2];
        for (int t = 1; t <= 2; t++)
        {
            p.Grad[0] = (float)gs[t - 1];
            opt.Step(0.01);
            w *= 1 - 0.01 * 0.1;
            m = 0.9 * m + 0.1 * gs[t - 1];
            v = 0.999 * v + 0.001 * gs[t - 1] * gs[t - 1];
            w -= 0.01 / (1 - Math.Pow(0.9, t)) * m / (Math.Sqrt(v) / Math.Sqrt(1 - Math.Pow(0.999, t)) + 1e-8);
        }
        Assert.Equal(w, p.Data[0], 6);
    }

    [Fact]
    public void Schedule_WarmupThenHalfCosine()
    {
        var s = LrSchedule.FromRatio(0.03, 3);   // the fixture trajectory: ceil(0.09) = 1 warmup step
        Assert.Equal(1, s.WarmupSteps);
        Assert.Equal(0, s.Factor(0));
        Assert.Equal(1, s.Factor(1), 12);
        Assert.Equal(0.5, s.Factor(2), 12);
        var long_ = new LrSchedule(10, 110);
        Assert.Equal(0.5, long_.Factor(5), 12);
        Assert.Equal(0.5, long_.Factor(60), 12);
        Assert.Equal(0, long_.Factor(110), 12);
    }

    [Fact]
    public void Clipping_ScalesOnlyWhenAboveMax_AndReturnsNormBefore()
    {
        var a = new Parameter("a", [2], [0, 0]);
        var b = new Parameter("b", [1], [0]);
        a.Grad[0] = 3; a.Grad[1] = 0; b.Grad[0] = 4;
        double norm = GradientClipping.ClipByGlobalNorm([a, b], 1.0);
        Assert.Equal(5, norm, 6);
        Assert.Equal(3 / (5 + 1e-6), a.Grad[0], 5);
        Assert.Equal(4 / (5 + 1e-6), b.Grad[0], 5);
        double again = GradientClipping.ClipByGlobalNorm([a, b], 10.0);
        Assert.Equal(1, again, 5);
        Assert.Equal(3 / (5 + 1e-6), a.Grad[0], 5);
    }

    [Fact]
    public void Groups_NoDecayOnBiasesAndNorms_ProjectorLrSeparate()
    {
        Parameter P(string n) => new(n, [1], [0]);
        var ps = new[] { P("model.layers.0.self_attn.q_proj.weight"), P("model.layers.0.input_layernorm.weight"), P("model.mm_projector.0.weight"), P("model.mm_projector.0.bias") };
        var groups = ParameterGroup.ForLlava(ps, 0.1, projectorLr: 2e-5);
        Assert.Equal(4, groups.Count);
        Assert.Contains(groups, g => g.WeightDecay == 0.1 && g.LearningRate is null && g.Parameters.Single().Name.Contains("q_proj"));
        Assert.Contains(groups, g => g.WeightDecay == 0 && g.LearningRate is null && g.Parameters.Single().Name.Contains("layernorm"));
        Assert.Contains(groups, g => g.WeightDecay == 0.1 && g.LearningRate == 2e-5 && g.Parameters.Single().Name.EndsWith("0.weight") && g.Parameters.Single().Name.Contains("mm_projector"));
        Assert.Contains(groups, g => g.WeightDecay == 0 && g.LearningRate == 2e-5 && g.Parameters.Single().Name.EndsWith("bias"));
    }
}
