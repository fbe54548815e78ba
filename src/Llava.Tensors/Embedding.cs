// Contract: token embedding lookup, widening F32/F16/BF16 rows to f32; out-of-range ids throw before anything is written.
namespace Llava.Tensors;

/// <summary>y (ids.Length x table.Cols) = table[ids].</summary>
public static partial class Embedding
{
    public static void Lookup(Span<float> y, WeightMatrix table, ReadOnlySpan<int> ids)
    {
        int cols = table.Cols;
        if (y.Length < (long)ids.Length * cols) throw new ArgumentException("output shorter than ids.Length * table.Cols", nameof(y));
        foreach (int id in ids)
            if ((uint)id >= (uint)table.Rows)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} out of range [0, {table.Rows})");
        // Rows are copied/widened sequentially: a lookup is tiny next to the matmuls that follow.
        for (int i = 0; i < ids.Length; i++) table.ReadRow(ids[i], y.Slice(i * cols, cols));
    }
}
