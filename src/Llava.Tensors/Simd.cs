// Contract: the SIMD width (512, 256 or 0 = scalar) every kernel dispatches on; chosen from the hardware, overridable by tests.
using System.Runtime.Intrinsics;

namespace Llava.Tensors;

/// <summary>Selects the vector width once: Vector512 → Vector256 → scalar, by IsHardwareAccelerated.</summary>
internal static class Simd
{
    /// <summary>Hardware-preferred width.</summary>
    public static readonly int Native = Vector512.IsHardwareAccelerated ? 512 : Vector256.IsHardwareAccelerated ? 256 : 0;

    /// <summary>Width in use. Tests set it to exercise every path (Vector512 works, emulated, on AVX2 machines).</summary>
    public static int Width = Native;
}
