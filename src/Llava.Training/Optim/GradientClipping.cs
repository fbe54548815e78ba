namespace Llava.Training.Optim;

/// <summary>torch.nn.utils.clip_grad_norm_: global L2 norm over all gradients; scale by max/(norm + 1e-6) when that is below 1.</summary>
public static class GradientClipping
{
    /// <summary>Returns the norm before clipping (what the Trainer logs as grad_norm).</summary>
    public static double ClipByGlobalNorm(IEnumerable<Parameter> parameters, double maxNorm)
    {
        var list = parameters.ToList();
        double sum = 0;
        foreach (var p in list)
        {
            double s = 0;
            foreach (float g in p.Grad) s += (double)g * g;
            sum += s;
        }
        double norm = Math.Sqrt(sum);
        double coef = maxNorm / (norm + 1e-6);
        if (coef < 1)
        {
            float c = (float)coef;
            foreach (var p in list)
                System.Numerics.Tensors.TensorPrimitives.Multiply(p.Grad, c, p.Grad);
        }
        return norm;
    }
}
