using Llava.Formats.Torch;
using Llava.Tests;

namespace Llava.Formats.Tests.Torch;

/// <summary>Damaged copies of the real fixtures must fail as ModelFormatException naming the file, never as another exception.</summary>
public sealed class TorchCheckpointCorruptionTests : IDisposable
{
    readonly TempFiles temp = new();
    public void Dispose() => temp.Dispose();

    static string Bin(params string[] parts) => Fixtures.TinyPath(["original-bin", .. parts]);

    /// <summary>Opens the file, expecting a format error (or, when allowed, success); anything else fails the test.</summary>
    static void OpenExpectingFormatError(string path, bool mayOpen = false)
    {
        try
        {
            using var ck = TorchCheckpoint.Open(path);
            if (!mayOpen) Assert.Fail($"{path} opened although it is damaged");
            // Whatever was accepted must still be readable without crashing.
            foreach (var n in ck.Names) _ = ck.Get(n).Bytes.Length;
        }
        catch (ModelFormatException e)
        {
            Assert.Contains(path, e.Message);
            Assert.Null(e.InnerException); // a specific message, not the safety net wrapping some other exception
        }
    }

    [Fact]
    public void TruncatedShardIsRefusedAtEveryCut()
    {
        var bytes = File.ReadAllBytes(Bin("llava-v1.5-tiny", "pytorch_model-00001-of-00002.bin"));
        long[] cuts = [0, 1, 3, 4, 21, 30, 100, 2500, 4_000_000, bytes.Length - 200, bytes.Length - 100, bytes.Length - 60,
                       bytes.Length - 22, bytes.Length - 21, bytes.Length - 1];
        foreach (var cut in cuts) OpenExpectingFormatError(temp.Write(bytes[..(int)cut], "cut"));
    }

    [Fact]
    public void TruncatedProjectorIsRefusedAtEveryCut()
    {
        var bytes = File.ReadAllBytes(Bin("mm_projector.bin"));
        for (int cut = 0; cut < bytes.Length; cut += 61) OpenExpectingFormatError(temp.Write(bytes[..cut], "cut"));
    }

    [Fact]
    public void TruncatedLegacyFileIsRefusedAtEveryCut()
    {
        var bytes = File.ReadAllBytes(Bin("legacy", "pytorch_model.bin"));
        var cuts = Enumerable.Range(0, 3300 / 13).Select(i => i * 13)
            .Concat([3223, 3231, 5000, 4_100_000, bytes.Length - 129, bytes.Length - 1]);
        foreach (var cut in cuts)
        {
            var path = temp.Write(bytes[..cut], "cut");
            OpenExpectingFormatError(path);
            File.Delete(path);
        }
    }

    [Fact]
    public void FlippedBytesNeverCrash()
    {
        // Most flips land in tensor data (the file still opens); those in the pickle or zip records must be caught.
        var bytes = File.ReadAllBytes(Bin("mm_projector.bin"));
        var random = new Random(1234);
        for (int i = 0; i < 300; i++)
        {
            var copy = (byte[])bytes.Clone();
            int at = i < 150 ? random.Next(copy.Length) : copy.Length - 1 - random.Next(1200); // bias toward the directory
            copy[at] ^= (byte)(1 << random.Next(8));
            var path = temp.Write(copy, "flip");
            OpenExpectingFormatError(path, mayOpen: true);
            File.Delete(path);
        }
    }

    [Fact]
    public void FlippedBytesInLegacyPickleNeverCrash()
    {
        var bytes = File.ReadAllBytes(Bin("legacy", "pytorch_model.bin"));
        var head = bytes[..12000]; // the pickles and the first storages; cut the rest to keep the test small
        var random = new Random(99);
        for (int i = 0; i < 200; i++)
        {
            var copy = (byte[])head.Clone();
            copy[random.Next(3300)] = (byte)random.Next(256);
            var path = temp.Write(copy, "flip");
            OpenExpectingFormatError(path); // truncated storages: can never open
            File.Delete(path);
        }
    }

    [Fact]
    public void CorruptedPickleIsReportedAsCrcMismatch()
    {
        var bytes = File.ReadAllBytes(Bin("mm_projector.bin"));
        int pkl = IndexOf(bytes, "ctorch._utils\n"u8);
        bytes[pkl + 1] = (byte)'T'; // "Torch._utils" would be refused as a global; the CRC catches it first
        var path = temp.Write(bytes);
        var e = Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Open(path));
        Assert.Contains("CRC", e.Message);
    }

    [Fact]
    public void EmptyAndForeignFilesAreRefused()
    {
        foreach (var content in new[] { Array.Empty<byte>(), "PK"u8.ToArray(), "hello world, not a checkpoint"u8.ToArray(), new byte[] { 0x80, 2, (byte)'.' } })
        {
            var path = temp.Write(content);
            var e = Assert.Throws<ModelFormatException>(() => TorchCheckpoint.Open(path));
            Assert.Contains(path, e.Message);
        }
    }

    [Fact]
    public void MissingFileIsNotAFormatError() =>
        Assert.Throws<FileNotFoundException>(() => TorchCheckpoint.Open(Path.Combine(Path.GetTempPath(), "no-such-checkpoint-" + Guid.NewGuid() + ".bin")));

    static int IndexOf(byte[] haystack, ReadOnlySpan<byte> needle) => haystack.AsSpan().IndexOf(needle);
}
