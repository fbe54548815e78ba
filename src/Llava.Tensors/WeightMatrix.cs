// Contract: a non-owning view of a row-major (Rows x Cols) weight matrix stored as F32, F16 or BF16.
using System.Runtime.CompilerServices;

namespace Llava.Tensors;

/// <summary>
/// A weight matrix (out_features x in_features), row-major, usually pointing into a memory-mapped file.
/// The struct does not own or pin the memory: the caller keeps it alive.
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
    }

    public DType DType { get; }
    public int Rows { get; }
    public int Cols { get; }
    public void* Data { get; }

    /// <summary>Bytes per element of the storage type.</summary>
    public int ElementSize => DType == DType.F32 ? 4 : 2;

    /// <summary>Address of element (row, 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal byte* RowPointer(int row) => (byte*)Data + (long)row * Cols * ElementSize;

    /// <summary>Exact widening of one row to f32.</summary>
    public void ReadRow(int row, Span<float> dst)
    {
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row), row, $"row out of range [0, {Rows})");
        if (dst.Length < Cols) throw new ArgumentException("destination shorter than Cols", nameof(dst));
        byte* p = RowPointer(row);
        switch (DType)
        {
            case DType.F32: new ReadOnlySpan<float>(p, Cols).CopyTo(dst); break;
            case DType.F16: DTypeConvert.F16ToF32(new ReadOnlySpan<Half>(p, Cols), dst); break;
            default: DTypeConvert.BF16ToF32(new ReadOnlySpan<ushort>(p, Cols), dst); break;
        }
    }

    /// <summary>Scalar element read (reference kernels and tests).</summary>
    public float this[int row, int col]
    {
        get
        {
            if ((uint)row >= (uint)Rows || (uint)col >= (uint)Cols) throw new IndexOutOfRangeException();
            byte* p = RowPointer(row);
            return DType switch
            {
                DType.F32 => ((float*)p)[col],
                DType.F16 => (float)((Half*)p)[col],
                _ => DTypeConvert.BF16ToF32(((ushort*)p)[col]),
            };
        }
    }
}
