// Contract: embedding backward, dTable[ids[i]] += dY[i] (scatter-add, repeated ids summed in token order); ids checked first; column chunks across workers.
namespace Llava.Tensors;

public static unsafe partial class Embedding
{
    /// <summary>
    /// dTable (rows, cols) gets dY (ids.Length, cols) row i added to row ids[i]. Repeated ids accumulate. Work items are
    /// column chunks of the whole table, each walking the tokens in order, so no two threads touch the same float and
    /// repeated ids are summed in token order whatever the thread count. Out-of-range ids throw before anything is written.
    /// </summary>
    public static void Backward(Span<float> dTable, ReadOnlySpan<float> dY, ReadOnlySpan<int> ids, int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if (dTable.Length < (long)rows * cols) throw new ArgumentException("dTable shorter than rows*cols", nameof(dTable));
        if (dY.Length < (long)ids.Length * cols) throw new ArgumentException("dY shorter than ids.Length*cols", nameof(dY));
        foreach (int id in ids)
            if ((uint)id >= (uint)rows)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} out of range [0, {rows})");
        if (ids.IsEmpty || cols == 0) return;
        fixed (float* pt = dTable) fixed (float* pdy = dY) fixed (int* pid = ids)
        {
            var job = new ScatterJob { Table = pt, DY = pdy, Ids = pid, Count = ids.Length, Cols = cols };
            Workers.Run(ref job, (cols + ScatterChunk - 1) / ScatterChunk, Math.Max(1, 16384 / Math.Max(1, ids.Length * ScatterChunk)));
        }
    }

    const int ScatterChunk = 128;

    struct ScatterJob : IParallelJob
    {
        public float* Table, DY; public int* Ids; public int Count, Cols;
        public void Execute(int start, int end)
        {
            int c0 = start * ScatterChunk, c1 = Math.Min(Cols, end * ScatterChunk);
            for (int i = 0; i < Count; i++)
                VecOps.Axpy(Table + (long)Ids[i] * Cols + c0, 1f, DY + (long)i * Cols + c0, c1 - c0);
        }
    }
}
