using System.IO.MemoryMappedFiles;

namespace Llava.Formats;

/// <summary>A read-only memory map of a whole file. Weight files are mapped, never copied into managed arrays.</summary>
public sealed unsafe class MappedFile : IDisposable
{
    readonly MemoryMappedFile? map;
    readonly MemoryMappedViewAccessor? view;
    byte* pointer;

    public string Path { get; }
    public long Length { get; }
    /// <summary>Start of the mapping (null for an empty file).</summary>
    public byte* Pointer => pointer;

    public MappedFile(string path)
    {
        Path = path;
        if (!File.Exists(path)) throw new FileNotFoundException($"File not found: {path}", path);
        // The length comes from the opened stream, not FileInfo: Hugging Face caches symlink weights to blobs,
        // and FileInfo of a symlink reports the link's own size.
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        Length = stream.Length;
        if (Length == 0) { stream.Dispose(); return; }
        map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        pointer = p + view.PointerOffset;
    }

    /// <summary>Bytes [offset, offset+count) of the file; throws when the range lies outside it.</summary>
    public ReadOnlySpan<byte> Span(long offset, int count)
    {
        if (offset < 0 || count < 0 || offset + count > Length)
            throw new ModelFormatException($"{Path}: range [{offset}, {offset + count}) lies outside the file ({Length} bytes)");
        return new ReadOnlySpan<byte>(pointer + offset, count);
    }

    public void Dispose()
    {
        if (view != null && pointer != null)
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
            pointer = null;
        }
        view?.Dispose();
        map?.Dispose();
    }
}
