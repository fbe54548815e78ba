using Llava.Tensors;
using Llava.Training.Recipe;
using Llava.Training.Trainer;

namespace Llava.Cli;

/// <summary>Writes the recipe's trained model where users load it from: one llava-hf directory (bf16, the CLIP tower inside).</summary>
internal static class RecipeExport
{
    public static void Export(MicroRecipeResult result, string outDir)
    {
        // Written next to the destination, then swapped in: a failed export never leaves a half-written model behind.
        string full = Path.GetFullPath(outDir).TrimEnd(Path.DirectorySeparatorChar);
        string staging = full + ".partial";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        ModelExport.ConvertToHuggingFace(result.ModelDir, staging, result.VisionDir, DType.BF16);
        if (Directory.Exists(full)) Directory.Delete(full, recursive: true);
        Directory.Move(staging, full);
    }

    public static long Bytes(string dir) => Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
}
