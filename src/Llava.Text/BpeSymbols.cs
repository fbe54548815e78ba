namespace Llava.Text;

/// <summary>The symbol list of one BPE run: a doubly linked list over spans of the normalized text.</summary>
internal struct BpeSymbols
{
    public int[] Start;
    public int[] Len;      // 0 once merged into the left neighbour
    public int[] Prev;
    public int[] Next;
    public bool[]? Freeze; // user-defined pieces are never merged further

    public BpeSymbols(int capacity, bool withFreeze)
    {
        Start = new int[capacity];
        Len = new int[capacity];
        Prev = new int[capacity];
        Next = new int[capacity];
        Freeze = withFreeze ? new bool[capacity] : null;
    }
}
