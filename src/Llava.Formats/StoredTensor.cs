using System.Buffers.Binary;
using Llava.Tensors;

namespace Llava.Formats;

/// <summary>
/// One tensor of a checkpoint: contiguous row-major bytes that stay valid while the file that owns them is open.
/// The data usually points into a memory map; only non-contiguous views (old PyTorch checkpoints) are materialized.
/// </summary>
public sealed unsafe class StoredTensor
{
    public string Name { get; }
    public DType DType { get; }
    public long[] Shape { get; }
    public long ElementCount { get; }
    /// <summary>Start of the row-major data.</summary>
    public byte* Data { get; }
    /// <summary>For GGUF block-quantized tensors: the ggml type (then <see cref="DType"/> is U8 and meaningless).</summary>
    public GgmlType? Quant { get; }
    public long ByteLength => Quant is GgmlType q ? GgmlTypeInfo.RowBytes(q, Shape.Length == 0 ? 1 : Shape[^1]) * (ElementCount / Math.Max(1, Shape.Length == 0 ? 1 : Shape[^1])) : ElementCount * DType.Size();

    public StoredTensor(string name, DType dtype, long[] shape, byte* data)
    {
        Name = name;
        DType = dtype;
        Shape = shape;
        long n = 1;
        foreach (var d in shape) n = checked(n * d);
        ElementCount = n;
        Data = data;
    }

    /// <summary>A block-quantized tensor (GGUF): rows of <c>shape[^1]</c> elements stored as ggml blocks.</summary>
    public StoredTensor(string name, GgmlType quant, long[] shape, byte* data) : this(name, DType.U8, shape, data) => Quant = quant;

    public ReadOnlySpan<byte> Bytes => new(Data, checked((int)ByteLength));

    public string ShapeString => "[" + string.Join(", ", Shape) + "]";

    /// <summary>Converts elements [start, start+dst.Length) to f32 (exact for f16/bf16).</summary>
    public void ReadFloat32(long start, Span<float> dst)
    {
        if (start < 0 || start + dst.Length > ElementCount) throw new ArgumentOutOfRangeException(nameof(start));
        if (Quant is GgmlType q)
        {
            // Whole blocks only: dequantize exactly as ggml does.
            var (block, size) = GgmlTypeInfo.Layout(q)!.Value;
            if (start % block != 0 || dst.Length % block != 0) throw new ArgumentException($"{Name}: {q} reads must cover whole blocks of {block}");
            Llava.Tensors.Quantization.GgmlQuant.Dequantize(q, new ReadOnlySpan<byte>(Data + start / block * size, dst.Length / block * size), dst);
            return;
        }
        switch (DType)
        {
            case DType.F32:
                new ReadOnlySpan<float>((float*)Data + start, dst.Length).CopyTo(dst);
                break;
            case DType.BF16:
                DTypeConvert.BF16ToF32(new ReadOnlySpan<ushort>((ushort*)Data + start, dst.Length), dst);
                break;
            case DType.F16:
                DTypeConvert.F16ToF32(new ReadOnlySpan<Half>((Half*)Data + start, dst.Length), dst);
                break;
            case DType.F64:
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)((double*)Data)[start + i];
                break;
            case DType.I64:
                for (int i = 0; i < dst.Length; i++) dst[i] = ((long*)Data)[start + i];
                break;
            case DType.I32:
                for (int i = 0; i < dst.Length; i++) dst[i] = ((int*)Data)[start + i];
                break;
            default:
                throw new NotSupportedException($"{Name}: cannot read {DType} as float32");
        }
    }

    /// <summary>All elements as a new f32 array (for small tensors and tests).</summary>
    public float[] ToFloat32()
    {
        var a = new float[checked((int)ElementCount)];
        ReadFloat32(0, a);
        return a;
    }

    /// <summary>All elements of an integer tensor as i64.</summary>
    public long[] ToInt64()
    {
        var a = new long[checked((int)ElementCount)];
        for (int i = 0; i < a.Length; i++)
        {
            a[i] = DType switch
            {
                DType.I64 => ((long*)Data)[i],
                DType.I32 => ((int*)Data)[i],
                DType.I16 => ((short*)Data)[i],
                DType.I8 => ((sbyte*)Data)[i],
                DType.U8 or DType.Bool => Data[i],
                _ => throw new NotSupportedException($"{Name}: {DType} is not an integer type"),
            };
        }
        return a;
    }
}
