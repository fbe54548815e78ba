namespace Llava.Formats.Torch;

/// <summary>A stored (uncompressed) zip entry: its bytes are [DataOffset, DataOffset + Length) of the file.</summary>
internal readonly record struct ZipEntry(string Name, long DataOffset, long Length, uint Crc32);
