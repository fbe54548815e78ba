namespace Llava.Models.Llama;

/// <summary>
/// Keys and values of every layer for positions [0, Length), allocated once for <see cref="Capacity"/> positions.
/// Layout per layer: (Capacity, kvHeads, headDim). Writing past the capacity is an error, never a silent wrap.
/// </summary>
public sealed class KvCache
{
    readonly float[][] keys, values;
    readonly int rowSize;

    public int Capacity { get; }
    /// <summary>Positions filled so far.</summary>
    public int Length { get; private set; }

    public KvCache(LlamaConfig c, int capacity)
    {
        if (capacity <= 0) throw new ArgumentOutOfRangeException(nameof(capacity));
        Capacity = capacity;
        rowSize = c.NumKvHeads * c.HeadDim;
        long perLayer = (long)capacity * rowSize;
        if (perLayer > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(capacity), $"a KV cache of {capacity} positions is too large");
        keys = new float[c.NumLayers][];
        values = new float[c.NumLayers][];
        for (int l = 0; l < c.NumLayers; l++)
        {
            keys[l] = new float[perLayer];
            values[l] = new float[perLayer];
        }
    }

    public long Bytes => 2L * keys.Length * Capacity * rowSize * sizeof(float);

    /// <summary>Room left for new positions.</summary>
    public int Remaining => Capacity - Length;

    /// <summary>Keys of one layer for positions [0, length).</summary>
    public Span<float> Keys(int layer, int length) => keys[layer].AsSpan(0, length * rowSize);
    public Span<float> Values(int layer, int length) => values[layer].AsSpan(0, length * rowSize);

    /// <summary>Rows for positions [start, start+count) of one layer, to be written.</summary>
    public Span<float> KeySlot(int layer, int start, int count) => keys[layer].AsSpan(start * rowSize, count * rowSize);
    public Span<float> ValueSlot(int layer, int start, int count) => values[layer].AsSpan(start * rowSize, count * rowSize);

    /// <summary>Checks that <paramref name="count"/> more positions fit after <paramref name="start"/>.</summary>
    public void EnsureRoom(int start, int count)
    {
        if (start < 0 || start > Length) throw new InvalidOperationException($"KV cache write at {start} but only {Length} positions are filled");
        if (start + count > Capacity)
            throw new ContextOverflowException(start + count, Capacity);
    }

    /// <summary>Marks positions up to <paramref name="length"/> as filled (after a forward pass) or drops a suffix.</summary>
    public void SetLength(int length)
    {
        if (length < 0 || length > Capacity) throw new ArgumentOutOfRangeException(nameof(length));
        Length = length;
    }
}

/// <summary>The prompt plus generated tokens would not fit in the context window.</summary>
public sealed class ContextOverflowException : Exception
{
    public int Needed { get; }
    public int Capacity { get; }

    public ContextOverflowException(int needed, int capacity)
        : base($"the conversation needs {needed} positions but the context holds {capacity}; start a new conversation, shorten the prompt, or raise --ctx-size (up to the model's context length)")
    {
        Needed = needed;
        Capacity = capacity;
    }
}
