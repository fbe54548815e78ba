using Llava.Tensors;

namespace Llava.Formats.Torch;

/// <summary>An allowed global after the allow-list check (see <see cref="TorchGlobals"/>).</summary>
internal sealed record PickleGlobal(string Module, string Name, PickleGlobalKind Kind, DType StorageDType = default)
{
    public string FullName => Module + "." + Name;
    public override string ToString() => FullName;
}
