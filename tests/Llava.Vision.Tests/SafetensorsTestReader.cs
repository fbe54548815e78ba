using System.Text.Json;

namespace Llava.Vision.Tests;

/// <summary>Minimal safetensors reader for the reference fixtures (F32 tensors only).</summary>
internal static class SafetensorsTestReader
{
    public static (float[] Data, int[] Shape) ReadF32(string path, string tensorName)
    {
        var bytes = File.ReadAllBytes(path);
        long headerLen = BitConverter.ToInt64(bytes, 0);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLen));
        var entry = header.RootElement.GetProperty(tensorName);
        Assert.Equal("F32", entry.GetProperty("dtype").GetString());
        var shape = entry.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var offsets = entry.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        long dataStart = 8 + headerLen;
        int count = (int)((offsets[1] - offsets[0]) / 4);
        Assert.Equal(shape.Aggregate(1, (a, b) => a * b), count);
        var data = new float[count];
        Buffer.BlockCopy(bytes, (int)(dataStart + offsets[0]), data, 0, count * 4);
        return (data, shape);
    }
}
