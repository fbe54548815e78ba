using Llava.Tensors;

namespace Llava.Formats.Torch;

/// <summary>
/// The allow-list of globals a checkpoint pickle may name. Everything else (os.system, builtins.eval, ...) is refused
/// at the GLOBAL / STACK_GLOBAL opcode, before anything could be called.
/// </summary>
internal static class TorchGlobals
{
    static readonly Dictionary<string, DType> storageTypes = new()
    {
        ["FloatStorage"] = DType.F32,
        ["HalfStorage"] = DType.F16,
        ["BFloat16Storage"] = DType.BF16,
        ["DoubleStorage"] = DType.F64,
        ["LongStorage"] = DType.I64,
        ["IntStorage"] = DType.I32,
        ["ShortStorage"] = DType.I16,
        ["CharStorage"] = DType.I8,
        ["ByteStorage"] = DType.U8,
        ["BoolStorage"] = DType.Bool,
    };

    /// <summary>The global if allowed, otherwise null; <paramref name="why"/> then says why it was refused.</summary>
    public static PickleGlobal? Resolve(string module, string name, out string why)
    {
        why = "";
        switch (module, name)
        {
            case ("collections", "OrderedDict"): return new(module, name, PickleGlobalKind.OrderedDict);
            case ("torch._utils", "_rebuild_tensor_v2"): return new(module, name, PickleGlobalKind.RebuildTensorV2);
            case ("torch._utils", "_rebuild_tensor"): return new(module, name, PickleGlobalKind.RebuildTensor);
            case ("torch._utils", "_rebuild_parameter"): return new(module, name, PickleGlobalKind.RebuildParameter);
            case ("torch._utils", "_rebuild_parameter_with_state"): return new(module, name, PickleGlobalKind.RebuildParameterWithState);
        }
        if (module == "torch" && storageTypes.TryGetValue(name, out var dtype))
            return new(module, name, PickleGlobalKind.StorageType, dtype);

        // A storage type we cannot represent (complex, quantized, float8, ...) is not hostile, just unsupported: say so.
        why = module == "torch" && name.EndsWith("Storage", StringComparison.Ordinal)
            ? $"unsupported storage type '{module}.{name}' (supported: {string.Join(", ", storageTypes.Keys.Select(k => "torch." + k))})"
            : $"refusing to load: the pickle asks for global '{module}.{name}'; only tensor rebuilds are allowed";
        return null;
    }
}
