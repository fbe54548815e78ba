using System.Runtime.InteropServices;
using Llava.Tensors;

namespace Llava.Models.Llama;

/// <summary>Element type of the KV cache (llama.cpp's --cache-type-k/v): f32, or f16 (half the memory and attention reads).</summary>
public enum KvCacheType
{
    F32,
    F16,
}

public static class KvCacheTypes
{
    public static string Name(this KvCacheType t) => t == KvCacheType.F16 ? "f16" : "f32";

    public static int ElementSize(this KvCacheType t) => t == KvCacheType.F16 ? 2 : 4;

    /// <summary>"f32" / "f16" (also "float32", "float16", "fp16", "half"); null when unknown.</summary>
    public static KvCacheType? TryParse(string? s) => s?.Trim().ToLowerInvariant() switch
    {
        "f32" or "fp32" or "float32" or "float" => KvCacheType.F32,
        "f16" or "fp16" or "float16" or "half" => KvCacheType.F16,
        _ => null,
    };
}

/// <summary>
/// Keys and values of every layer for positions [0, Length), reserved once for <see cref="Capacity"/> positions.
/// Layout per layer: (Capacity, kvHeads, headDim), as f32 or f16 (<see cref="Type"/>). Writing past the capacity is an
/// error, never a silent wrap.
/// <para>The storage is one native block (calloc: for large blocks fresh zero pages from the OS, which become resident
/// only when first written), so the resident memory grows with the positions actually used, not with the capacity.
/// Layer l's keys then values follow layer l−1's. Freed by <see cref="Dispose"/> (or the finalizer).</para>
/// </summary>
public sealed unsafe class KvCache : IDisposable
{
    byte* data;
    readonly long layerBytes;   // K (or V) of one layer
    readonly int layers, rowSize;

    public KvCacheType Type { get; }
    public int Capacity { get; }
    /// <summary>Positions filled so far.</summary>
    public int Length { get; private set; }

    public KvCache(LlamaConfig c, int capacity, KvCacheType type = KvCacheType.F32)
    {
        if (capacity <= 0) throw new ArgumentOutOfRangeException(nameof(capacity));
        if (type is not (KvCacheType.F32 or KvCacheType.F16)) throw new ArgumentOutOfRangeException(nameof(type));
        Capacity = capacity;
        Type = type;
        layers = c.NumLayers;
        rowSize = c.NumKvHeads * c.HeadDim;
        long perLayer = (long)capacity * rowSize;
        if (perLayer > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(capacity), $"a KV cache of {capacity} positions is too large");
        layerBytes = perLayer * type.ElementSize();
        long total = Bytes;
        if (total > 0)
        {
            try { data = (byte*)NativeMemory.AllocZeroed((nuint)total); }
            catch (OutOfMemoryException) { throw new OutOfMemoryException($"cannot reserve a {type.Name()} KV cache of {capacity} positions ({total / 1048576.0:F0} MiB); lower --ctx-size"); }
            GC.AddMemoryPressure(total);
        }
    }

    /// <summary>Bytes reserved for all layers' keys and values at full capacity.</summary>
    public long Bytes => 2L * layers * layerBytes;

    /// <summary>Bytes of the positions filled so far (what is resident once written).</summary>
    public long UsedBytes => 2L * layers * Length * rowSize * Type.ElementSize();

    /// <summary>Room left for new positions.</summary>
    public int Remaining => Capacity - Length;

    byte* Base(int layer, int which)
    {
        if (data == null && Bytes > 0) throw new ObjectDisposedException(nameof(KvCache));
        if ((uint)layer >= (uint)layers) throw new ArgumentOutOfRangeException(nameof(layer));
        return data + (2L * layer + which) * layerBytes;
    }

    void CheckRange(int start, int count)
    {
        if (start < 0 || count < 0 || (long)start + count > Capacity) throw new ArgumentOutOfRangeException(nameof(count), $"positions [{start}, {start + count}) outside the cache's {Capacity}");
    }

    Span<float> F32(int layer, int which, int start, int count)
    {
        if (Type != KvCacheType.F32) throw new InvalidOperationException($"this KV cache holds {Type.Name()}; use the F16 accessors");
        CheckRange(start, count);
        return new Span<float>((float*)Base(layer, which) + (long)start * rowSize, count * rowSize);
    }

    Span<Half> F16(int layer, int which, int start, int count)
    {
        if (Type != KvCacheType.F16) throw new InvalidOperationException($"this KV cache holds {Type.Name()}; use the f32 accessors");
        CheckRange(start, count);
        return new Span<Half>((Half*)Base(layer, which) + (long)start * rowSize, count * rowSize);
    }

    /// <summary>Keys of one layer for positions [0, length) (f32 cache).</summary>
    public Span<float> Keys(int layer, int length) => F32(layer, 0, 0, length);
    public Span<float> Values(int layer, int length) => F32(layer, 1, 0, length);

    /// <summary>Rows for positions [start, start+count) of one layer, to be written (f32 cache).</summary>
    public Span<float> KeySlot(int layer, int start, int count) => F32(layer, 0, start, count);
    public Span<float> ValueSlot(int layer, int start, int count) => F32(layer, 1, start, count);

    /// <summary>Keys of one layer for positions [0, length) (f16 cache).</summary>
    public Span<Half> KeysF16(int layer, int length) => F16(layer, 0, 0, length);
    public Span<Half> ValuesF16(int layer, int length) => F16(layer, 1, 0, length);

    /// <summary>Stores f32 rows (count, kvHeads·headDim) at positions [start, start+count) of one layer, rounding to
    /// nearest-even for an f16 cache.</summary>
    public void Write(int layer, int start, int count, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        int n = count * rowSize;
        if (keys.Length < n || values.Length < n) throw new ArgumentException("rows shorter than count × kvHeads·headDim");
        if (Type == KvCacheType.F32)
        {
            keys[..n].CopyTo(KeySlot(layer, start, count));
            values[..n].CopyTo(ValueSlot(layer, start, count));
        }
        else
        {
            DTypeConvert.F32ToF16(keys[..n], F16(layer, 0, start, count));
            DTypeConvert.F32ToF16(values[..n], F16(layer, 1, start, count));
        }
    }

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

    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    ~KvCache() => Free();

    void Free()
    {
        var p = data;
        if (p == null) return;
        data = null;
        NativeMemory.Free(p);
        GC.RemoveMemoryPressure(Bytes);
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
