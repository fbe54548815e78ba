using System.Runtime.InteropServices;
using System.Text;
using Llava.Tensors;

namespace Llava.Formats.Torch;

/// <summary>
/// A PyTorch <c>.bin</c> checkpoint (torch.save of a state dict), read safely: the pickle runs on a restricted VM
/// that only rebuilds tensors (see <see cref="RestrictedUnpickler"/>), so a hostile file is refused instead of executed.
/// Both the zip format (torch >= 1.6) and the legacy format are memory-mapped; contiguous tensors point into the map,
/// non-contiguous views are copied to native memory owned by this object. Everything is released by Dispose.
/// </summary>
public sealed unsafe class TorchCheckpoint : ITensorFile
{
    /// <summary>Extra room for materialized views beyond the file size (views with stride 0 can exceed their storage).</summary>
    const long MaterializeSlack = 16L << 20;

    readonly MappedFile file;
    readonly List<string> names = new();
    readonly Dictionary<string, StoredTensor> tensors = new(StringComparer.Ordinal);
    readonly List<nint> allocations = new();
    bool disposed;

    public string Source => file.Path;
    public IReadOnlyCollection<string> Names => names;
    /// <summary>True for the pre-1.6 (non-zip) torch.save format.</summary>
    public bool IsLegacyFormat { get; private set; }

    TorchCheckpoint(MappedFile file) => this.file = file;

    /// <summary>Opens one checkpoint file; throws <see cref="ModelFormatException"/> naming the file when it is corrupt, hostile or unsupported.</summary>
    public static TorchCheckpoint Open(string path)
    {
        var file = new MappedFile(path);
        var checkpoint = new TorchCheckpoint(file);
        try
        {
            checkpoint.Load();
            return checkpoint;
        }
        catch (ModelFormatException)
        {
            checkpoint.Dispose();
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A safety net: every known malformation already has its own message, but a reader of untrusted files
            // must still fail as a format error, never as a crash of some other type.
            checkpoint.Dispose();
            throw new ModelFormatException($"{path}: malformed PyTorch checkpoint ({e.GetType().Name}: {e.Message})", e);
        }
    }

    public bool TryGet(string name, out StoredTensor tensor)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return tensors.TryGetValue(name, out tensor!);
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var p in allocations) NativeMemory.Free((void*)p);
        allocations.Clear();
        file.Dispose();
    }

    Exception Fail(string message) => new ModelFormatException($"{file.Path}: {message}");

    void Load()
    {
        if (file.Length < 4) throw Fail($"not a PyTorch checkpoint: only {file.Length} bytes");
        var head = file.Span(0, 4);
        object? root;
        if (head[0] == (byte)'P' && head[1] == (byte)'K' && (head[2], head[3]) is (3, 4) or (5, 6))
            root = LoadZip();
        else if (head[0] == 0x80)
        {
            IsLegacyFormat = true;
            root = LegacyCheckpointReader.Read(file);
        }
        else
            throw Fail("not a PyTorch checkpoint: neither a zip archive nor a legacy torch.save pickle");

        if (root is not PickleDict dict)
            throw Fail($"the checkpoint holds {PickleValue.Describe(root)}, not a state dict (a dict of tensors)");
        long budget = file.Length + MaterializeSlack;
        foreach (var (key, value) in dict.Items)
        {
            // Non-tensor values (rare extras such as ints) carry no weights; only tensors are exposed.
            if (value is not TorchTensorRef t) continue;
            if (key is not string name) throw Fail($"tensor key {PickleValue.Describe(key)} is not a string");
            tensors[name] = ToStored(name, t, ref budget);
            names.Add(name);
        }
    }

    /// <summary>Parses the archive, checks its byte order, and unpickles data.pkl with storages bound to data/&lt;key&gt;.</summary>
    object? LoadZip()
    {
        var entries = TorchZipReader.ReadEntries(file);
        // torch puts everything under one top folder (named after the file when it was saved): "<name>/data.pkl".
        var pkl = entries.FirstOrDefault(e => e.Name.EndsWith("/data.pkl", StringComparison.Ordinal) && e.Name.IndexOf('/') == e.Name.Length - 9);
        if (pkl.Name == null) throw Fail("zip archive has no '<name>/data.pkl' entry, so it is not a PyTorch checkpoint");
        string prefix = pkl.Name[..^"data.pkl".Length];
        var byName = entries.ToDictionary(e => e.Name, StringComparer.Ordinal);

        if (byName.TryGetValue(prefix + "byteorder", out var order))
        {
            string text = Encoding.ASCII.GetString(Checked(order)).Trim();
            if (text == "big") throw Fail("refusing to load: the checkpoint was written on a big-endian machine (byteorder 'big')");
            if (text != "little") throw Fail($"unknown byteorder '{text}' in the archive");
        }
        // Older torch (1.6-1.9) writes no byteorder record; those files are little-endian.

        _ = Checked(pkl); // a corrupted pickle is reported as such rather than as whatever it decodes to
        var unpickler = new RestrictedUnpickler(file.Path, pkl.Name, file.Pointer, pkl.DataOffset, pkl.DataOffset + pkl.Length,
            pid => ZipPersistentLoad(pid, prefix, byName));
        return unpickler.Load();
    }

    /// <summary>('storage', type, key, location, numel): checked against the data/&lt;key&gt; entry before anything uses it.</summary>
    TorchStorage ZipPersistentLoad(object?[] pid, string prefix, Dictionary<string, ZipEntry> byName)
    {
        if (pid.Length != 5 || pid[0] is not "storage")
            throw Fail($"unsupported persistent id ({PickleValue.Describe(pid.Length > 0 ? pid[0] : null)}, {pid.Length} fields); only ('storage', type, key, location, numel) is allowed");
        if (pid[1] is not PickleGlobal { Kind: PickleGlobalKind.StorageType } type)
            throw Fail($"persistent id names {PickleValue.Describe(pid[1])} as storage type");
        if (pid[2] is not string key) throw Fail($"storage key {PickleValue.Describe(pid[2])} is not a string");
        long numel = PickleValue.ToLong(pid[4], $"element count of storage '{key}'", Fail);
        if (!byName.TryGetValue(prefix + "data/" + key, out var entry))
            throw Fail($"storage '{key}' has no 'data/{key}' entry in the archive");
        long bytes;
        try { bytes = checked(numel * type.StorageDType.Size()); }
        catch (OverflowException) { bytes = -1; }
        if (numel < 0 || bytes < 0 || bytes > entry.Length)
            throw Fail($"storage '{key}' claims {numel} {type.StorageDType} elements ({(bytes < 0 ? "overflowing" : bytes.ToString())} bytes) but data/{key} holds only {entry.Length} bytes");
        var storage = new TorchStorage(key, type.StorageDType, numel);
        storage.Bind(file.Pointer + entry.DataOffset);
        return storage;
    }

    /// <summary>The bytes of a small metadata entry after checking its CRC.</summary>
    ReadOnlySpan<byte> Checked(ZipEntry e)
    {
        var bytes = file.Span(e.DataOffset, checked((int)e.Length));
        if (Crc32.Compute(bytes) != e.Crc32) throw Fail($"zip entry '{e.Name}' is corrupt (CRC mismatch)");
        return bytes;
    }

    /// <summary>A contiguous view points into the map; any other view is copied row-major into native memory.</summary>
    StoredTensor ToStored(string name, TorchTensorRef t, ref long budget)
    {
        var storage = t.Storage;
        if (!storage.IsBound) throw Fail($"tensor '{name}': storage '{storage.Key}' has no data");
        int es = storage.DType.Size();
        byte* source = storage.Data + t.StorageOffset * es;
        if (t.IsContiguous) return new StoredTensor(name, storage.DType, t.Size, source);

        long bytes = t.Numel * es; // checked in TorchTensorRef.Create
        if (bytes > budget)
            throw Fail($"tensor '{name}': copying non-contiguous views would need more memory than the file size justifies ({bytes} more bytes)");
        budget -= bytes;
        byte* dst = (byte*)NativeMemory.Alloc((nuint)Math.Max(bytes, 1));
        allocations.Add((nint)dst);
        CopyStrided(source, dst, t.Size, t.Stride, es);
        return new StoredTensor(name, storage.DType, t.Size, dst);
    }

    /// <summary>Gathers a strided view into row-major order, copying the innermost dimension as one run when it is dense.</summary>
    static void CopyStrided(byte* src, byte* dst, long[] size, long[] stride, int es)
    {
        int nd = size.Length;
        foreach (var s in size) if (s == 0) return;
        long inner = nd == 0 ? 1 : size[nd - 1];
        long innerStride = nd == 0 ? 1 : stride[nd - 1];
        var index = new long[Math.Max(nd - 1, 0)];
        while (true)
        {
            long offset = 0;
            for (int d = 0; d < nd - 1; d++) offset += index[d] * stride[d];
            byte* from = src + offset * es;
            if (innerStride == 1)
            {
                long n = inner * es;
                Buffer.MemoryCopy(from, dst, n, n);
                dst += n;
            }
            else
            {
                for (long i = 0; i < inner; i++, dst += es) Buffer.MemoryCopy(from + i * innerStride * es, dst, es, es);
            }
            // Odometer over the outer dimensions.
            int k = nd - 2;
            while (k >= 0 && ++index[k] == size[k]) index[k--] = 0;
            if (k < 0) return;
        }
    }
}
