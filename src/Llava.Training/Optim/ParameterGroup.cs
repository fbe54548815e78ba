namespace Llava.Training.Optim;

/// <summary>Parameters sharing a learning-rate multiplier and weight decay (Hugging Face Trainer's param groups).</summary>
public sealed record ParameterGroup(IReadOnlyList<Parameter> Parameters, double WeightDecay, double? LearningRate = null)
{
    /// <summary>
    /// LLaVA's grouping (llava_trainer.create_optimizer): weight decay on everything but biases and norm weights;
    /// projector parameters get <paramref name="projectorLr"/> when it is set (mm_projector_lr).
    /// </summary>
    public static List<ParameterGroup> ForLlava(IEnumerable<Parameter> parameters, double weightDecay, double? projectorLr)
    {
        static bool NoDecay(Parameter p) => p.Name.EndsWith(".bias") || p.Name.Contains("norm") || p.Name.Contains("layer_norm") || p.Name.Contains("layrnorm");
        var all = parameters.ToList();
        var groups = new List<ParameterGroup>();
        void Add(IEnumerable<Parameter> ps, double wd, double? lr) { var l = ps.ToList(); if (l.Count > 0) groups.Add(new ParameterGroup(l, wd, lr)); }
        if (projectorLr is double plr)
        {
            var proj = all.Where(p => p.Name.Contains("mm_projector") || p.Name.Contains("multi_modal_projector")).ToHashSet();
            Add(all.Where(p => !proj.Contains(p) && !NoDecay(p)), weightDecay, null);
            Add(all.Where(p => !proj.Contains(p) && NoDecay(p)), 0, null);
            Add(proj.Where(p => !NoDecay(p)), weightDecay, plr);
            Add(proj.Where(NoDecay), 0, plr);
        }
        else
        {
            Add(all.Where(p => !NoDecay(p)), weightDecay, null);
            Add(all.Where(NoDecay), 0, null);
        }
        return groups;
    }
}
