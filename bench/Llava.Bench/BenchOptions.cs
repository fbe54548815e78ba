namespace Llava.Bench;

sealed record BenchOptions(string Mode, string? Model, string? Image, int? Threads, int Runs)
{
    public static BenchOptions Parse(string[] args)
    {
        string mode = args.Length > 0 ? args[0] : "";
        string? model = null, image = null;
        int? threads = null;
        int runs = 5;
        for (int i = 1; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--model": model = Next(); break;
                case "--image": image = Next(); break;
                case "--threads": threads = int.Parse(Next()); break;
                case "--runs": runs = int.Parse(Next()); break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        return new BenchOptions(mode, model, image, threads, runs);
    }
}

static class Stats
{
    /// <summary>Runs <paramref name="action"/> once to warm up, then <paramref name="runs"/> times; returns the median seconds.</summary>
    public static double Median(int runs, Action action)
    {
        action();
        var times = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            action();
            times[i] = sw.Elapsed.TotalSeconds;
        }
        Array.Sort(times);
        return times[runs / 2];
    }
}
