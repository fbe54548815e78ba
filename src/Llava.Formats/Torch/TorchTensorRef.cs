using Llava.Tensors;

namespace Llava.Formats.Torch;

/// <summary>
/// What _rebuild_tensor_v2 describes: a strided view (offset, size, stride, all in elements) into a storage.
/// <see cref="Create"/> validates it completely, so later code can index the storage without further checks.
/// </summary>
internal sealed class TorchTensorRef
{
    /// <summary>More dimensions than any real tensor has; keeps hostile metadata small.</summary>
    public const int MaxDims = 64;

    public TorchStorage Storage { get; }
    public long StorageOffset { get; }
    public long[] Size { get; }
    public long[] Stride { get; }
    public long Numel { get; }

    TorchTensorRef(TorchStorage storage, long offset, long[] size, long[] stride, long numel)
    {
        Storage = storage;
        StorageOffset = offset;
        Size = size;
        Stride = stride;
        Numel = numel;
    }

    /// <summary>True when the elements are laid out row-major without gaps, so the storage bytes can be used as they are.</summary>
    public bool IsContiguous
    {
        get
        {
            long expected = 1;
            for (int d = Size.Length - 1; d >= 0; d--)
            {
                // A dimension of size 1 never moves, so its stride does not matter (torch treats it the same way).
                if (Size[d] != 1 && Stride[d] != expected) return false;
                expected *= Size[d];
            }
            return true;
        }
    }

    /// <summary>Checks the rebuild arguments and that every addressed element lies inside the storage.</summary>
    public static TorchTensorRef Create(object? storageArg, object? offsetArg, object? sizeArg, object? strideArg, Func<string, Exception> fail)
    {
        if (storageArg is not TorchStorage storage)
            throw fail($"tensor rebuild expects a storage (persistent id) as first argument, got {PickleValue.Describe(storageArg)}");
        long offset = PickleValue.ToLong(offsetArg, "storage offset", fail);
        long[] size = Dims(sizeArg, "size", fail);
        long[] stride = Dims(strideArg, "stride", fail);
        if (size.Length != stride.Length)
            throw fail($"tensor size {Show(size)} and stride {Show(stride)} have different lengths");
        if (offset < 0) throw fail($"negative storage offset {offset}");

        try
        {
            long numel = 1, last = offset;
            for (int d = 0; d < size.Length; d++)
            {
                numel = checked(numel * size[d]);
                if (size[d] > 0) last = checked(last + checked((size[d] - 1) * stride[d]));
            }
            if (numel > 0 ? last >= storage.Numel : offset > storage.Numel)
                throw fail($"tensor view (storage offset {offset}, size {Show(size)}, stride {Show(stride)}) reaches element {last} " +
                           $"but storage '{storage.Key}' has only {storage.Numel} elements");
            // The row-major copy must be addressable too, even if the view itself is not contiguous.
            _ = checked(numel * storage.DType.Size());
            return new TorchTensorRef(storage, offset, size, stride, numel);
        }
        catch (OverflowException)
        {
            throw fail($"tensor view (storage offset {offset}, size {Show(size)}, stride {Show(stride)}) overflows 64-bit arithmetic");
        }
    }

    static long[] Dims(object? arg, string what, Func<string, Exception> fail)
    {
        IReadOnlyList<object?> items = arg switch
        {
            object?[] tuple => tuple,
            List<object?> list => list,
            _ => throw fail($"tensor {what} must be a tuple of integers, got {PickleValue.Describe(arg)}"),
        };
        if (items.Count > MaxDims) throw fail($"tensor {what} has {items.Count} dimensions (at most {MaxDims} are supported)");
        var dims = new long[items.Count];
        for (int i = 0; i < dims.Length; i++)
        {
            dims[i] = PickleValue.ToLong(items[i], $"tensor {what}", fail);
            if (dims[i] < 0) throw fail($"tensor {what} {Show(dims[..(i + 1)])}... has a negative entry");
        }
        return dims;
    }

    public static string Show(long[] dims) => "[" + string.Join(", ", dims) + "]";
}
