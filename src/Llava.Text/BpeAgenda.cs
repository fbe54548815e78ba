using System.Runtime.CompilerServices;

namespace Llava.Text;

/// <summary>
/// Max-heap of candidate merges for <see cref="SentencePieceModel.EncodeNormalized"/>: highest score first,
/// then the leftmost pair (SentencePiece's order). A plain struct array keeps the hot loop allocation-free.
/// </summary>
internal struct BpeAgenda
{
    public struct Entry
    {
        public float Score;
        public int Left;
        public int Right;
        public int Size;
    }

    Entry[] items;
    int count;

    public BpeAgenda(int capacity) { items = new Entry[Math.Max(capacity, 4)]; count = 0; }

    static bool Before(in Entry a, in Entry b) => a.Score > b.Score || (a.Score == b.Score && a.Left < b.Left);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Push(float score, int left, int right, int size)
    {
        if (count == items.Length) Array.Resize(ref items, items.Length * 2);
        var e = new Entry { Score = score, Left = left, Right = right, Size = size };
        int i = count++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (!Before(e, items[parent])) break;
            items[i] = items[parent];
            i = parent;
        }
        items[i] = e;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool TryPop(out Entry top)
    {
        if (count == 0) { top = default; return false; }
        top = items[0];
        var last = items[--count];
        int i = 0;
        while (true)
        {
            int child = 2 * i + 1;
            if (child >= count) break;
            if (child + 1 < count && Before(items[child + 1], items[child])) child++;
            if (!Before(items[child], last)) break;
            items[i] = items[child];
            i = child;
        }
        if (count > 0) items[i] = last;
        return true;
    }
}
