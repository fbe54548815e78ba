// Contract: a non-owning view of a row-major (Rows x Cols) weight matrix stored as F32, F16, BF16 or a ggml block-quantized type.
using System.Runtime.CompilerServices;
using Llava.Tensors.Quantization;

namespace Llava.Tensors;

/// <summary>
/// A weight matrix (out_features x in_features), row-major, usually pointing into a memory-mapped file.
/// The struct does not own or pin the memory: the caller keeps it alive.
/// Quantized matrices (<see cref="IsQuantized"/>) store each row as Cols / block-size ggml blocks
/// (<see cref="Format"/>, e.g. Q4_K); their <see cref="DType"/> is <see cref="DType.U8"/> (raw bytes).
/// </summary>
public readonly unsafe struct WeightMatrix
{
    public WeightMatrix(DType dtype, int rows, int cols, void* data)
    {
        if (dtype is not (DType.F32 or DType.F16 or DType.BF16))
            throw new ArgumentException($"weight dtype {dtype} not supported (F32, F16, BF16 only)", nameof(dtype));
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if (data == null && (long)rows * cols > 0) throw new ArgumentNullException(nameof(data));
        DType = dtype; Rows = rows; Cols = cols; Data = data;
        Format = dtype switch { DType.F32 => GgmlType.F32, DType.F16 => GgmlType.F16, _ => GgmlType.BF16 };
        RowBytes = (long)cols * (dtype == DType.F32 ? 4 : 2);
    }

    /// <summary>A matrix in any storage <paramref name="format"/>: F32/F16/BF16, or a block type with a kernel here
    /// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K). Cols must be a whole number of blocks.</summary>
    public WeightMatrix(GgmlType format, int rows, int cols, void* data)
    {
        switch (format)
        {
            case GgmlType.F32: this = new WeightMatrix(DType.F32, rows, cols, data); return;
            case GgmlType.F16: this = new WeightMatrix(DType.F16, rows, cols, data); return;
            case GgmlType.BF16: this = new WeightMatrix(DType.BF16, rows, cols, data); return;
        }
        if (!GgmlQuant.IsSupported(format) || format == GgmlType.Q8_K)
            throw new ArgumentException($"weight format {format} not supported", nameof(format));
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if (data == null && (long)rows * cols > 0) throw new ArgumentNullException(nameof(data));
        DType = DType.U8; Rows = rows; Cols = cols; Data = data; Format = format;
        RowBytes = GgmlTypeInfo.RowBytes(format, cols);   // throws unless cols is a multiple of the block size
    }

    public DType DType { get; }
    public int Rows { get; }
    public int Cols { get; }
    public void* Data { get; }

    /// <summary>Storage format in ggml's numbering (F32, F16, BF16 for the float dtypes).</summary>
    public GgmlType Format { get; }

    /// <summary>True for ggml block-quantized storage.</summary>
    public bool IsQuantized => DType == DType.U8;

    /// <summary>Bytes of one stored row.</summary>
    public long RowBytes { get; }

    /// <summary>Bytes per element of the storage type (F32, F16, BF16 only; quantized rows have no per-element size).</summary>
    public int ElementSize => IsQuantized ? throw new InvalidOperationException($"{Format} has no per-element size; use RowBytes") : DType == DType.F32 ? 4 : 2;

    /// <summary>Address of element (row, 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal byte* RowPointer(int row) => (byte*)Data + row * RowBytes;

    /// <summary>Exact widening (or ggml-exact dequantization) of one row to f32.</summary>
    public void ReadRow(int row, Span<float> dst)
    {
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row), row, $"row out of range [0, {Rows})");
        if (dst.Length < Cols) throw new ArgumentException("destination shorter than Cols", nameof(dst));
        byte* p = RowPointer(row);
        switch (DType)
        {
            case DType.F32: new ReadOnlySpan<float>(p, Cols).CopyTo(dst); break;
            case DType.F16: DTypeConvert.F16ToF32(new ReadOnlySpan<Half>(p, Cols), dst); break;
            case DType.U8: GgmlQuant.Dequantize(Format, new ReadOnlySpan<byte>(p, checked((int)RowBytes)), dst[..Cols]); break;
            default: DTypeConvert.BF16ToF32(new ReadOnlySpan<ushort>(p, Cols), dst); break;
        }
    }

    /// <summary>Scalar element read (reference kernels and tests; for quantized storage it decodes the element's block).</summary>
    public float this[int row, int col]
    {
        get
        {
            if ((uint)row >= (uint)Rows || (uint)col >= (uint)Cols) throw new IndexOutOfRangeException();
            byte* p = RowPointer(row);
            switch (DType)
            {
                case DType.F32: return ((float*)p)[col];
                case DType.F16: return (float)((Half*)p)[col];
                case DType.U8:
                {
                    var (bs, ts) = GgmlTypeInfo.Layout(Format)!.Value;
                    Span<float> block = stackalloc float[bs];
                    GgmlQuant.Dequantize(Format, new ReadOnlySpan<byte>(p + (long)(col / bs) * ts, ts), block);
                    return block[col % bs];
                }
                default: return DTypeConvert.BF16ToF32(((ushort*)p)[col]);
            }
        }
    }
}
