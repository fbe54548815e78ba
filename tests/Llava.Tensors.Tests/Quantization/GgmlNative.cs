// Contract: test oracle: llama.cpp's own ggml (LLamaSharp.Backend.Cpu 0.30.0 native libs), loaded by explicit path; type traits and vec_dot as function pointers.
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Llava.Tensors;

namespace Llava.Tensors.Tests.Quantization;

/// <summary>
/// P/Invoke into libggml-base.so (ggml_get_type_traits: to_float, from_float_ref) and libggml-cpu.so
/// (ggml_get_type_traits_cpu: from_float, vec_dot, vec_dot_type). Struct layouts are those of ggml.h / ggml-cpu.h of
/// that release; <see cref="Traits"/> cross-checks blck_size / type_size / type_name against our own table, so a
/// layout mismatch fails loudly instead of testing garbage. <see cref="Available"/> is false (with
/// <see cref="LoadError"/>) when the libraries cannot be loaded; the tests then fall back to golden vectors.
/// </summary>
internal static unsafe class GgmlNative
{
    [StructLayout(LayoutKind.Sequential)]
    struct TypeTraits
    {
        public byte* TypeName; public long BlckSize; public long BlckSizeInterleave; public nuint TypeSize;
        [MarshalAs(UnmanagedType.U1)] public bool IsQuantized;
        public delegate* unmanaged<void*, float*, long, void> ToFloat;
        public delegate* unmanaged<float*, void*, long, void> FromFloatRef;
    }

    [StructLayout(LayoutKind.Sequential)]
    struct TypeTraitsCpu
    {
        public delegate* unmanaged<float*, void*, long, void> FromFloat;
        public delegate* unmanaged<int, float*, nuint, void*, nuint, void*, nuint, int, void> VecDot;
        public int VecDotType;
        public long NRows;
    }

    public static readonly bool Available;
    public static readonly string? LoadError;
    public static readonly string? Directory;
    static readonly delegate* unmanaged<int, TypeTraits*> getTraits;
    static readonly delegate* unmanaged<int, TypeTraitsCpu*> getTraitsCpu;
    static readonly nint hBase;

    static GgmlNative()
    {
        try
        {
            if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64) throw new PlatformNotSupportedException("oracle libraries are linux-x64 only here");
            string variant = Avx512F.IsSupported ? "avx512" : Avx2.IsSupported && Fma.IsSupported ? "avx2" : Avx.IsSupported ? "avx" : "noavx";
            var candidates = new List<string>
            {
                Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", variant),
            };
            string nugetRoot = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            candidates.Add(Path.Combine(nugetRoot, "llamasharp.backend.cpu", "0.30.0", "runtimes", "linux-x64", "native", variant));
            candidates.Add(Path.Combine(nugetRoot, "llamasharp.backend.cpu", "0.30.0", "LLamaSharpRuntimes", "linux-x64", "native", variant));
            Directory = candidates.FirstOrDefault(d => File.Exists(Path.Combine(d, "libggml-base.so")))
                ?? throw new DllNotFoundException("libggml-base.so not found in: " + string.Join(", ", candidates));
            // Load base first by full path: libggml-cpu's DT_NEEDED on libggml-base.so then resolves to the loaded copy.
            hBase = NativeLibrary.Load(Path.Combine(Directory, "libggml-base.so"));
            nint hCpu = NativeLibrary.Load(Path.Combine(Directory, "libggml-cpu.so"));
            getTraits = (delegate* unmanaged<int, TypeTraits*>)NativeLibrary.GetExport(hBase, "ggml_get_type_traits");
            getTraitsCpu = (delegate* unmanaged<int, TypeTraitsCpu*>)NativeLibrary.GetExport(hCpu, "ggml_get_type_traits_cpu");
            ((delegate* unmanaged<void>)NativeLibrary.GetExport(hCpu, "ggml_cpu_init"))();
            Available = true;
        }
        catch (Exception e) { LoadError = e.GetType().Name + ": " + e.Message; }
    }

    static TypeTraits* Traits(GgmlType t)
    {
        var p = getTraits((int)t);
        var (bs, ts) = GgmlTypeInfo.Layout(t)!.Value;
        string name = Marshal.PtrToStringUTF8((nint)p->TypeName) ?? "";
        if (p->BlckSize != bs || (int)p->TypeSize != ts || !string.Equals(name, t.ToString(), StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException($"ggml traits for {t}: name '{name}', blck {p->BlckSize}, size {p->TypeSize}; expected {bs}/{ts}: struct layout mismatch?");
        return p;
    }

    // ggml's traits table leaves to_float / from_float_ref empty for Q8_K (an activation-only type); the row
    // functions themselves are exported from libggml-base, so fall back to them by name.
    static nint Export(string name) => NativeLibrary.TryGetExport(hBase, name, out var f) ? f : throw new EntryPointNotFoundException(name);

    public static void ToFloat(GgmlType t, ReadOnlySpan<byte> src, Span<float> dst)
    {
        var p = Traits(t);
        var f = p->ToFloat != null ? p->ToFloat : (delegate* unmanaged<void*, float*, long, void>)Export("dequantize_row_" + ggmlName(t));
        fixed (byte* s = src) fixed (float* d = dst) f(s, d, dst.Length);
    }

    public static void FromFloatRef(GgmlType t, ReadOnlySpan<float> src, Span<byte> dst)
    {
        var p = Traits(t);
        var f = p->FromFloatRef != null ? p->FromFloatRef : (delegate* unmanaged<float*, void*, long, void>)Export("quantize_row_" + ggmlName(t) + "_ref");
        fixed (float* s = src) fixed (byte* d = dst) f(s, d, src.Length);
    }

    static string ggmlName(GgmlType t) { var s = t.ToString(); return s.EndsWith("_K") ? s[..^2].ToLowerInvariant() + "_K" : s.ToLowerInvariant(); }

    /// <summary>The type ggml quantizes activations to for a dot product with weights of type <paramref name="t"/>.</summary>
    public static GgmlType VecDotType(GgmlType t) { Traits(t); return (GgmlType)getTraitsCpu((int)t)->VecDotType; }

    /// <summary>ggml's CPU (SIMD) quantizer for activations.</summary>
    public static void FromFloatCpu(GgmlType t, ReadOnlySpan<float> src, Span<byte> dst)
    {
        var p = getTraitsCpu((int)t);
        fixed (float* s = src) fixed (byte* d = dst) p->FromFloat(s, d, src.Length);
    }

    /// <summary>ggml's vec_dot of one row of weights (type t) with activations already in VecDotType(t).</summary>
    public static float VecDot(GgmlType t, int n, ReadOnlySpan<byte> w, ReadOnlySpan<byte> act)
    {
        var p = getTraitsCpu((int)t);
        float s;
        fixed (byte* a = w) fixed (byte* b = act) p->VecDot(n, &s, 0, a, 0, b, 0, 1);
        return s;
    }
}
