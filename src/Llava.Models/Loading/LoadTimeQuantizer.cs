using System.Runtime.InteropServices;
using Llava.Formats;
using Llava.Tensors;
using Llava.Tensors.Quantization;

namespace Llava.Models.Loading;

/// <summary>
/// LLaVA's --load-8bit / --load-4bit on a CPU: each weight matrix is quantized to a ggml block type the moment it is
/// read, one row at a time from the memory map, into native memory the model owns. Peak memory stays near the
/// quantized size (the f16/bf16 source is only mapped, never copied). 8 bits → Q8_0; 4 bits → Q4_K (Q4_0 when the
/// row length is not a multiple of 256, as llama.cpp falls back).
/// </summary>
public sealed unsafe class LoadTimeQuantizer : IDisposable
{
    readonly List<nint> buffers = new();
    public int Bits { get; }
    public long QuantizedBytes { get; private set; }
    public long SourceBytes { get; private set; }

    public LoadTimeQuantizer(int bits)
    {
        if (bits is not (4 or 8)) throw new ArgumentOutOfRangeException(nameof(bits), "--load-8bit or --load-4bit");
        Bits = bits;
    }

    public GgmlType TypeFor(int cols) =>
        Bits == 8 ? GgmlType.Q8_0 : cols % 256 == 0 ? GgmlType.Q4_K : GgmlType.Q4_0;

    public WeightMatrix Quantize(string name, StoredTensor t, int rows, int cols)
    {
        var type = TypeFor(cols);
        var (block, _) = GgmlTypeInfo.Layout(type)!.Value;
        if (cols % block != 0) return new WeightMatrix(t.DType, rows, cols, t.Data);   // cannot be blocked: keep as is
        long rowBytes = GgmlTypeInfo.RowBytes(type, cols);
        byte* dst = (byte*)NativeMemory.AlignedAlloc((nuint)(rowBytes * rows), 64);
        lock (buffers) buffers.Add((nint)dst);
        var src = new StoredTensorRows(t, cols);
        var job = new RowJob { Source = src, Dest = dst, RowBytes = rowBytes, Cols = cols, Type = type };
        Workers.Run(ref job, rows, Math.Max(1, 65536 / cols));
        QuantizedBytes += rowBytes * rows;
        SourceBytes += t.ByteLength;
        return new WeightMatrix(type, rows, cols, dst);
    }

    readonly record struct StoredTensorRows(StoredTensor Tensor, int Cols);

    struct RowJob : IParallelJob
    {
        public StoredTensorRows Source;
        public byte* Dest;
        public long RowBytes;
        public int Cols;
        public GgmlType Type;

        public void Execute(int start, int end)
        {
            var row = new float[Cols];
            for (int r = start; r < end; r++)
            {
                Source.Tensor.ReadFloat32((long)r * Cols, row);
                GgmlQuant.QuantizeReference(Type, row, new Span<byte>(Dest + r * RowBytes, (int)RowBytes));
            }
        }
    }

    public void Dispose()
    {
        foreach (var b in buffers) NativeMemory.AlignedFree((void*)b);
        buffers.Clear();
    }
}
