using System.Runtime.InteropServices;
using Llava.Formats;
using Llava.Tensors;

namespace Llava.Models.Gguf;

/// <summary>Streams a checkpoint tensor into a GGUF file as F32/F16/BF16, row by row, optionally reordering rows.</summary>
internal static class GgufTensorEncoder
{
    public static GgmlType ToGgml(GgufOutputType t) => t switch
    {
        GgufOutputType.F32 => GgmlType.F32,
        GgufOutputType.F16 => GgmlType.F16,
        GgufOutputType.BF16 => GgmlType.BF16,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>
    /// Writes <paramref name="src"/> (row-major, rows of <paramref name="rowLength"/> elements) converted to <paramref name="type"/>.
    /// Output row r is source row <paramref name="rowMap"/>(r) (identity when null).
    /// </summary>
    public static void Write(Stream output, StoredTensor src, GgmlType type, long rowLength, Func<long, long>? rowMap = null)
    {
        if (rowLength <= 0 || src.ElementCount % rowLength != 0)
            throw new ModelFormatException($"{src.Name}: {src.ElementCount} elements do not split into rows of {rowLength}");
        long rows = src.ElementCount / rowLength;
        int n = checked((int)rowLength);
        var f = new float[n];
        var bytes = new byte[n * (type == GgmlType.F32 ? 4 : 2)];
        for (long r = 0; r < rows; r++)
        {
            long from = rowMap?.Invoke(r) ?? r;
            src.ReadFloat32(from * rowLength, f);
            switch (type)
            {
                case GgmlType.F32:
                    MemoryMarshal.AsBytes(f.AsSpan()).CopyTo(bytes);
                    break;
                case GgmlType.F16:
                {
                    var h = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
                    for (int i = 0; i < n; i++) h[i] = (Half)f[i];   // round to nearest even, like numpy's astype(float16)
                    break;
                }
                case GgmlType.BF16:
                {
                    var u = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
                    for (int i = 0; i < n; i++) u[i] = DTypeConvert.F32ToBF16(f[i]);
                    break;
                }
                default:
                    throw new NotSupportedException($"GGUF export to {type} is not supported (F32, F16, BF16)");
            }
            output.Write(bytes);
        }
    }

    /// <summary>
    /// llama.cpp's LlamaModel.permute for q/k projections: Hugging Face rotates the two halves of each head
    /// (rotate_half), ggml's llama RoPE rotates adjacent pairs, so within each head the output row 2i+j is source
    /// row j·(d/2)+i.
    /// </summary>
    public static Func<long, long> RopePermutation(int heads, int headDim) => r =>
    {
        long h = r / headDim, rem = r % headDim;
        long i = rem / 2, j = rem % 2;
        return h * headDim + j * (headDim / 2) + i;
    };
}
