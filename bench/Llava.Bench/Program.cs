// Llava.Bench: measured, not guessed. Medians of several runs; states the machine.
//   dotnet run -c Release --project bench/Llava.Bench -- kernels [--threads N] [--runs R]
//   dotnet run -c Release --project bench/Llava.Bench -- model --model DIR [--image FILE] [--threads N] [--runs R]
//   dotnet run -c Release --project bench/Llava.Bench -- train [--model ORIGINAL_DIR] [--threads N] [--runs R]
//   dotnet run -c Release --project bench/Llava.Bench -- race --shape tiny|1b|7b --type f16|q8_0|q4_0|q4_k [--threads N] [--runs R] [--json FILE] [--cache DIR] [--measure-limits]
using System.Diagnostics;
using System.Runtime.Intrinsics;
using Llava.Bench;
using Llava.Tensors;

if (args.Length > 0 && args[0] == "race") return Llava.Bench.Race.RaceCommand.Run(args);
var opts = BenchOptions.Parse(args);
if (opts.Threads is int t) Workers.SetThreadCount(t);
Console.WriteLine($"machine: {Environment.ProcessorCount} logical cores, {Workers.ThreadCount} threads used, " +
    $"Vector512 {(Vector512.IsHardwareAccelerated ? "yes" : "no")}, Vector256 {(Vector256.IsHardwareAccelerated ? "yes" : "no")}, .NET {Environment.Version}");
switch (opts.Mode)
{
    case "kernels": KernelBench.Run(opts); break;
    case "model": ModelBench.Run(opts); break;
    case "train": TrainBench.Run(opts); break;
    default:
        Console.Error.WriteLine("usage: Llava.Bench kernels|model|train [--model DIR] [--image FILE] [--threads N] [--runs R]\n       Llava.Bench race --shape tiny|1b|7b --type f16|q8_0|q4_0|q4_k [--threads N] [--runs R] [--json FILE] [--cache DIR] [--measure-limits]");
        return 2;
}
return 0;
