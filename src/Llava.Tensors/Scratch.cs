// Contract: per-thread reusable f32 scratch buffers, grown on demand, so kernels allocate nothing in steady state.
namespace Llava.Tensors;

/// <summary>Thread-local scratch. Slots are independent buffers so one kernel can hold several at once.</summary>
internal static class Scratch
{
    [ThreadStatic] static float[]?[]? slots;

    /// <summary>A buffer of at least <paramref name="length"/> floats (contents undefined). Reused by the next call with the same slot.</summary>
    public static float[] Get(int slot, int length)
    {
        var s = slots ??= new float[4][];
        var b = s[slot];
        if (b == null || b.Length < length)
        {
            // Grow geometrically and 64-float aligned in size so repeated small growth does not reallocate often.
            int size = Math.Max(length, b == null ? 0 : Math.Min(int.MaxValue / 2, b.Length) * 2);
            s[slot] = b = GC.AllocateUninitializedArray<float>((size + 63) & ~63, pinned: true);
        }
        return b;
    }
}
