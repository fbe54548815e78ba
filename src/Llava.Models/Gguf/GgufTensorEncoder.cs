using System.Runtime.InteropServices;
using Llava.Formats;
using Llava.Tensors;
using Llava.Tensors.Quantization;

namespace Llava.Models.Gguf;

/// <summary>
/// Streams a checkpoint tensor into a GGUF file as F32/F16/BF16 or a ggml block type, a bounded chunk of rows at a
/// time (never the whole tensor), optionally reordering rows. Quantization is ggml's reference quantizer
/// (quantize_row_*_ref, what llama-quantize runs without an importance matrix), rows spread over the worker threads.
/// </summary>
internal static class GgufTensorEncoder
{
    /// <summary>Elements converted per chunk: 4 MiB of floats in, at most as many bytes out.</summary>
    const int ChunkElements = 1 << 20;

    public static GgmlType ToGgml(GgufOutputType t) => t.BaseType();

    /// <summary>
    /// Writes <paramref name="src"/> (row-major, rows of <paramref name="rowLength"/> elements) converted to <paramref name="type"/>.
    /// Output row r is source row <paramref name="rowMap"/>(r) (identity when null). <paramref name="progress"/> gets the
    /// bytes written so far after each chunk.
    /// </summary>
    public static void Write(Stream output, StoredTensor src, GgmlType type, long rowLength, Func<long, long>? rowMap = null, Action<long>? progress = null)
    {
        if (rowLength <= 0 || src.ElementCount % rowLength != 0)
            throw new ModelFormatException($"{src.Name}: {src.ElementCount} elements do not split into rows of {rowLength}");
        long rows = src.ElementCount / rowLength;
        int n = checked((int)rowLength);
        long rowBytes = GgmlTypeInfo.RowBytes(type, rowLength);
        int chunkRows = (int)Math.Clamp(ChunkElements / rowLength, 1, rows);
        var f = new float[checked(chunkRows * n)];
        var bytes = new byte[checked(chunkRows * rowBytes)];
        long written = 0;
        for (long r0 = 0; r0 < rows; r0 += chunkRows)
        {
            int count = (int)Math.Min(chunkRows, rows - r0);
            for (int i = 0; i < count; i++)
            {
                long from = rowMap?.Invoke(r0 + i) ?? r0 + i;
                src.ReadFloat32(from * rowLength, f.AsSpan(i * n, n));
            }
            var fs = f.AsSpan(0, count * n);
            var bs = bytes.AsSpan(0, checked((int)(count * rowBytes)));
            switch (type)
            {
                case GgmlType.F32:
                    MemoryMarshal.AsBytes(fs).CopyTo(bs);
                    break;
                case GgmlType.F16:
                {
                    var h = MemoryMarshal.Cast<byte, Half>(bs);
                    for (int i = 0; i < fs.Length; i++) h[i] = (Half)fs[i];   // round to nearest even, like numpy's astype(float16)
                    break;
                }
                case GgmlType.BF16:
                {
                    var u = MemoryMarshal.Cast<byte, ushort>(bs);
                    for (int i = 0; i < fs.Length; i++) u[i] = DTypeConvert.F32ToBF16(fs[i]);
                    break;
                }
                default:
                    if (!GgmlQuant.IsSupported(type) || type == GgmlType.Q8_K)
                        throw new NotSupportedException($"GGUF export to {type} is not supported");
                    var job = new QuantizeRowsJob { Type = type, Src = f, Dst = bytes, RowLength = n, RowBytes = (int)rowBytes };
                    Workers.Run(ref job, count, minItemsPerThread: Math.Max(1, 16384 / n));
                    break;
            }
            output.Write(bs);
            written += bs.Length;
            progress?.Invoke(written);
        }
    }

    struct QuantizeRowsJob : IParallelJob
    {
        public GgmlType Type;
        public float[] Src;
        public byte[] Dst;
        public int RowLength, RowBytes;

        public readonly void Execute(int start, int end)
        {
            for (int r = start; r < end; r++)
                GgmlQuant.QuantizeReference(Type, Src.AsSpan(r * RowLength, RowLength), Dst.AsSpan(r * RowBytes, RowBytes));
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
