using System.Buffers.Binary;
using System.Numerics;
using Llava.Tensors;

namespace Llava.Formats.Torch;

/// <summary>
/// The pre-1.6 torch.save format (<c>_use_new_zipfile_serialization=False</c>): five pickles back to back (magic number,
/// protocol version, sys info, the object, the list of storage keys) followed, for each key in list order, by an
/// 8-byte little-endian element count and the storage's raw bytes. Storages are bound to those bytes in the map.
/// </summary>
internal static unsafe class LegacyCheckpointReader
{
    static readonly BigInteger magicNumber = BigInteger.Parse("119547037146038801333356");
    const long ProtocolVersion = 1001;

    /// <summary>Returns the unpickled object with every storage bound to its bytes.</summary>
    public static object? Read(MappedFile file)
    {
        string src = file.Path;
        Exception Fail(string m) => new ModelFormatException($"{src}: {m}");
        long pos = 0;

        object? Next(string what, Func<object?[], TorchStorage>? persistentLoad)
        {
            var u = new RestrictedUnpickler(src, what, file.Pointer, pos, file.Length, persistentLoad);
            var v = u.Load();
            pos = u.Position;
            return v;
        }

        var magic = Next("legacy magic number", null);
        if (!(magic is BigInteger m && m == magicNumber))
            throw Fail("not a PyTorch checkpoint: neither a zip archive nor a legacy torch.save file (magic number missing)");
        if (Next("legacy protocol version", null) is not long protocol || protocol != ProtocolVersion)
            throw Fail($"unsupported legacy torch.save protocol version (expected {ProtocolVersion})");
        if (Next("legacy sys info", null) is PickleDict sysInfo &&
            sysInfo.TryGetValue("little_endian", out var little) && little is false)
            throw Fail("refusing to load: the checkpoint was written on a big-endian machine");

        // Root storages by key, as the object pickle names them; views share their root's bytes.
        var roots = new Dictionary<string, TorchStorage>(StringComparer.Ordinal);
        var views = new Dictionary<string, TorchStorage>(StringComparer.Ordinal);
        var obj = Next("legacy object pickle", pid => PersistentLoad(pid, roots, views, Fail));

        if (Next("legacy storage key list", null) is not List<object?> keys)
            throw Fail("legacy storage key list is not a list");

        var bound = new HashSet<string>(StringComparer.Ordinal);
        foreach (var k in keys)
        {
            if (k is not string key) throw Fail($"legacy storage key {PickleValue.Describe(k)} is not a string");
            if (!roots.TryGetValue(key, out var storage)) throw Fail($"legacy storage '{key}' is listed but no tensor uses it, so its element type is unknown");
            if (!bound.Add(key)) throw Fail($"legacy storage '{key}' is listed twice");
            if (pos > file.Length - 8) throw Fail($"legacy storage '{key}' record at byte {pos} runs past the end of the file ({file.Length} bytes)");
            ulong count = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(file.Pointer + pos, 8));
            pos += 8;
            if (count != (ulong)storage.Numel)
                throw Fail($"legacy storage '{key}' record holds {count} elements but its persistent id says {storage.Numel}");
            long bytes = StorageBytes(storage, Fail);
            if (bytes > file.Length - pos)
                throw Fail($"legacy storage '{key}' ({bytes} bytes at byte {pos}) runs past the end of the file ({file.Length} bytes)");
            storage.Bind(file.Pointer + pos);
            pos += bytes;
        }
        foreach (var key in roots.Keys)
            if (!bound.Contains(key)) throw Fail($"legacy storage '{key}' is used by a tensor but has no data in the file");
        return obj;
    }

    /// <summary>('storage', type, root_key, location, numel, view_metadata): validated, bytes bound later.</summary>
    static TorchStorage PersistentLoad(object?[] pid, Dictionary<string, TorchStorage> roots, Dictionary<string, TorchStorage> views, Func<string, Exception> fail)
    {
        if (pid.Length != 6 || pid[0] is not "storage")
            throw fail($"unsupported legacy persistent id ({PickleValue.Describe(pid.Length > 0 ? pid[0] : null)}, {pid.Length} fields); only ('storage', type, key, location, numel, view) is allowed");
        if (pid[1] is not PickleGlobal { Kind: PickleGlobalKind.StorageType } type)
            throw fail($"persistent id names {PickleValue.Describe(pid[1])} as storage type");
        if (pid[2] is not string key) throw fail($"storage key {PickleValue.Describe(pid[2])} is not a string");
        long numel = PickleValue.ToLong(pid[4], $"element count of storage '{key}'", fail);
        if (numel < 0) throw fail($"storage '{key}' has negative element count {numel}");

        if (roots.TryGetValue(key, out var root))
        {
            if (root.DType != type.StorageDType || root.Numel != numel)
                throw fail($"storage '{key}' is described twice differently ({root.DType}×{root.Numel} vs {type.StorageDType}×{numel})");
        }
        else
        {
            root = new TorchStorage(key, type.StorageDType, numel);
            _ = StorageBytes(root, fail); // reject absurd sizes now, before anything else uses them
            roots[key] = root;
        }
        if (pid[5] is null) return root;

        // Old torch pickled storage slices as (view_key, offset, size) of a root storage.
        if (pid[5] is not object?[] { Length: 3 } view || view[0] is not string viewKey)
            throw fail($"storage '{key}' has malformed view metadata {PickleValue.Describe(pid[5])}");
        long offset = PickleValue.ToLong(view[1], "storage view offset", fail);
        long size = PickleValue.ToLong(view[2], "storage view size", fail);
        if (offset < 0 || size < 0 || offset > root.Numel || size > root.Numel - offset)
            throw fail($"storage view '{viewKey}' [{offset}, +{size}) lies outside storage '{key}' ({root.Numel} elements)");
        if (views.TryGetValue(viewKey, out var existing))
        {
            if (existing.Root != root || existing.RootOffset != offset || existing.Numel != size)
                throw fail($"storage view '{viewKey}' is described twice differently");
            return existing;
        }
        return views[viewKey] = new TorchStorage(viewKey, root, offset, size);
    }

    static long StorageBytes(TorchStorage s, Func<string, Exception> fail)
    {
        try { return checked(s.Numel * s.DType.Size()); }
        catch (OverflowException) { throw fail($"storage '{s.Key}' claims {s.Numel} {s.DType} elements, more than 64-bit sizes can hold"); }
    }
}
