using Llava.Tensors;

namespace Llava.Formats.Torch;

/// <summary>
/// A typed storage named by a persistent id: <see cref="Numel"/> elements of <see cref="DType"/>. A root storage owns
/// bytes in the memory map (bound once the archive entry or legacy record is known); a view (legacy view_metadata)
/// is a range of its root.
/// </summary>
internal sealed unsafe class TorchStorage
{
    byte* data;

    public string Key { get; }
    public DType DType { get; }
    public long Numel { get; }
    /// <summary>Null for a root storage.</summary>
    public TorchStorage? Root { get; }
    /// <summary>Where a view starts in its root, in elements.</summary>
    public long RootOffset { get; }
    bool bound;
    public bool IsBound => Root?.IsBound ?? bound;

    public TorchStorage(string key, DType dtype, long numel)
    {
        Key = key;
        DType = dtype;
        Numel = numel;
    }

    /// <summary>A view of <paramref name="root"/>; the caller has checked that it lies within the root.</summary>
    public TorchStorage(string key, TorchStorage root, long offset, long numel)
    {
        Key = key;
        DType = root.DType;
        Numel = numel;
        Root = root;
        RootOffset = offset;
    }

    /// <summary>Points a root storage at its bytes; the caller has checked there are at least Numel elements.</summary>
    public void Bind(byte* bytes)
    {
        if (Root != null) throw new InvalidOperationException("a storage view is bound through its root");
        data = bytes;
        bound = true;
    }

    /// <summary>Start of the storage's elements.</summary>
    public byte* Data
    {
        get
        {
            if (Root != null) return Root.Data + RootOffset * DType.Size();
            if (!bound) throw new InvalidOperationException($"storage '{Key}' has no data yet");
            return data;
        }
    }
}
