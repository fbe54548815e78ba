namespace Llava.Training.Optim;

/// <summary>transformers' get_cosine_schedule_with_warmup: linear warmup from 0, then a half cosine to 0.</summary>
public sealed record LrSchedule(int WarmupSteps, int TotalSteps)
{
    /// <summary>Warmup steps as TrainingArguments.get_warmup_steps: ceil(total · ratio).</summary>
    public static LrSchedule FromRatio(double warmupRatio, int totalSteps) => new((int)Math.Ceiling(totalSteps * warmupRatio), totalSteps);

    /// <summary>Multiplier of the base learning rate for the update made at 0-based step <paramref name="step"/>.</summary>
    public double Factor(int step)
    {
        if (step < WarmupSteps) return (double)step / Math.Max(1, WarmupSteps);
        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return Math.Max(0, 0.5 * (1 + Math.Cos(Math.PI * 2 * 0.5 * progress)));
    }
}
