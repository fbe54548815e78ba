namespace Llava.Formats.Tests.Torch;

/// <summary>A scratch directory for synthetic checkpoints, deleted with the test class.</summary>
public sealed class TempFiles : IDisposable
{
    readonly string dir = Path.Combine(Path.GetTempPath(), "llava-torch-tests-" + Guid.NewGuid().ToString("N"));
    int counter;

    public TempFiles() => Directory.CreateDirectory(dir);

    public string Write(byte[] bytes, string name = "ckpt")
    {
        var path = Path.Combine(dir, $"{name}-{Interlocked.Increment(ref counter)}.bin");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose()
    {
        try { Directory.Delete(dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
