namespace Llava.Formats.Torch;

/// <summary>
/// A Python dict / OrderedDict as built by the unpickler: insertion-ordered, a later SETITEM with an equal key replaces
/// the value. Keys are restricted to simple scalars (strings, ints, bools) so hashing never recurses into hostile nesting.
/// </summary>
internal sealed class PickleDict
{
    readonly Dictionary<object, int> index = new();
    readonly List<KeyValuePair<object, object?>> items = new();

    public IReadOnlyList<KeyValuePair<object, object?>> Items => items;
    public int Count => items.Count;

    /// <summary>Sets key to value; returns false when the key has a type that may not be a dict key here.</summary>
    public bool TrySet(object? key, object? value)
    {
        if (key is not (string or long or bool or System.Numerics.BigInteger)) return false;
        if (index.TryGetValue(key, out int i)) items[i] = new(key, value);
        else
        {
            index[key] = items.Count;
            items.Add(new(key, value));
        }
        return true;
    }

    public bool TryGetValue(string key, out object? value)
    {
        if (index.TryGetValue(key, out int i)) { value = items[i].Value; return true; }
        value = null;
        return false;
    }
}
