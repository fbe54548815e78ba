using System.Buffers.Binary;
using System.Text.Json;

namespace Llava.Formats.Tests.Torch;

/// <summary>
/// Ground truth for the .bin tests: a minimal safetensors parser (8-byte little-endian header length, JSON header
/// {name: {dtype, shape, data_offsets}}, then data), private to these tests, returning every tensor as f32.
/// </summary>
internal static class SafetensorsReference
{
    public sealed record Tensor(string DType, long[] Shape, float[] Values);

    static readonly Dictionary<string, Dictionary<string, Tensor>> cache = new();

    public static Dictionary<string, Tensor> Load(string path)
    {
        lock (cache)
        {
            if (cache.TryGetValue(path, out var hit)) return hit;
            var bytes = File.ReadAllBytes(path);
            long headerLength = BinaryPrimitives.ReadInt64LittleEndian(bytes);
            var dataStart = 8 + (int)headerLength;
            using var doc = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
            var result = new Dictionary<string, Tensor>();
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__") continue;
                string dtype = p.Value.GetProperty("dtype").GetString()!;
                var shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                var offsets = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                var data = bytes.AsSpan(dataStart + (int)offsets[0], (int)(offsets[1] - offsets[0]));
                result[p.Name] = new Tensor(dtype, shape, ToFloat32(dtype, data));
            }
            return cache[path] = result;
        }
    }

    static float[] ToFloat32(string dtype, ReadOnlySpan<byte> data)
    {
        switch (dtype)
        {
            case "F32":
            {
                var v = new float[data.Length / 4];
                for (int i = 0; i < v.Length; i++) v[i] = BinaryPrimitives.ReadSingleLittleEndian(data[(4 * i)..]);
                return v;
            }
            case "BF16":
            {
                var v = new float[data.Length / 2];
                for (int i = 0; i < v.Length; i++)
                    v[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(data[(2 * i)..]) << 16);
                return v;
            }
            case "F16":
            {
                var v = new float[data.Length / 2];
                for (int i = 0; i < v.Length; i++) v[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(data[(2 * i)..]);
                return v;
            }
            default:
                throw new NotSupportedException(dtype);
        }
    }
}
