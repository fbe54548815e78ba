namespace Llava.Training.Optim;

/// <summary>
/// A trainable tensor in f32 with its gradient (same shape) and optimizer state. Names are the checkpoint's
/// (e.g. "model.mm_projector.0.weight"), so saving and the reference fixtures line up.
/// </summary>
public sealed class Parameter
{
    public string Name { get; }
    public int[] Shape { get; }
    public float[] Data { get; }
    public float[] Grad { get; }
    /// <summary>Adam's first and second moments, allocated on the first step.</summary>
    public float[]? ExpAvg { get; internal set; }
    public float[]? ExpAvgSq { get; internal set; }

    public Parameter(string name, int[] shape, float[] data)
    {
        long n = 1;
        foreach (var d in shape) n *= d;
        if (n != data.Length) throw new ArgumentException($"{name}: {data.Length} values for shape [{string.Join(", ", shape)}]");
        Name = name;
        Shape = shape;
        // Pinned: kernels take raw pointers to weights (WeightMatrix), so the GC must never move them.
        Data = GC.AllocateArray<float>(data.Length, pinned: true);
        data.CopyTo(Data, 0);
        Grad = GC.AllocateArray<float>(data.Length, pinned: true);
    }

    /// <summary>The weight as a (rows × cols) f32 matrix for the kernels (valid for the parameter's lifetime).</summary>
    public unsafe Llava.Tensors.WeightMatrix AsMatrix(int rows, int cols) =>
        new(Llava.Tensors.DType.F32, rows, cols, System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(Data)));

    public int Length => Data.Length;

    public void ZeroGrad() => Array.Clear(Grad);

    public override string ToString() => $"{Name} [{string.Join(", ", Shape)}]";
}
