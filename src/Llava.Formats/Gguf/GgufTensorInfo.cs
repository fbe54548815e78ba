using Llava.Tensors;

namespace Llava.Formats.Gguf;

/// <summary>
/// One tensor of a GGUF file. <see cref="Dimensions"/> is in ggml order (ne0 = innermost, the row length):
/// a PyTorch weight [out, in] is stored with ne = [in, out]; <see cref="Shape"/> gives the PyTorch order.
/// </summary>
public sealed unsafe class GgufTensorInfo
{
    public string Name { get; }
    public GgmlType Type { get; }
    /// <summary>ne[], innermost first.</summary>
    public long[] Dimensions { get; }
    public long ElementCount { get; }
    /// <summary>Stored bytes (whole blocks for quantized types).</summary>
    public long ByteSize { get; }
    /// <summary>Offset relative to the start of the data section, as stored in the file.</summary>
    public long Offset { get; }
    /// <summary>Offset from the start of the file.</summary>
    public long FileOffset { get; }
    /// <summary>The raw data (blocks for quantized types) inside the memory map; valid while the file is open.</summary>
    public byte* Data { get; }

    internal GgufTensorInfo(string name, GgmlType type, long[] dims, long elements, long byteSize, long offset, long fileOffset, byte* data)
    {
        Name = name; Type = type; Dimensions = dims; ElementCount = elements; ByteSize = byteSize;
        Offset = offset; FileOffset = fileOffset; Data = data;
    }

    /// <summary>Dimensions outermost first (PyTorch / safetensors order).</summary>
    public long[] Shape => Dimensions.Reverse().ToArray();

    public ReadOnlySpan<byte> Bytes => new(Data, checked((int)ByteSize));

    public override string ToString() => $"{Name} {Type} ne=[{string.Join(", ", Dimensions)}]";
}
