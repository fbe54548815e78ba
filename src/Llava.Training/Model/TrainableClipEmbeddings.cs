using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using Llava.Models.Clip;
using Llava.Tensors;
using Llava.Training.Optim;

namespace Llava.Training.Model;

/// <summary>
/// CLIP's input embeddings with a backward (transformers' CLIPVisionEmbeddings, same math as
/// <see cref="ClipVisionEmbeddings"/>): a stride-P convolution without bias as im2col + GEMM, the class token first,
/// learned positions added. A batch is B images laid out one after the other: output rows b·T .. b·T+T−1, T = 1 + patches.
/// </summary>
public sealed unsafe class TrainableClipEmbeddings
{
    readonly ClipVisionConfig c;
    /// <summary>(C, 3, P, P): the conv kernel, read as a (C, 3·P·P) matrix.</summary>
    public Parameter PatchWeight { get; }
    /// <summary>(C)</summary>
    public Parameter ClassEmbedding { get; }
    /// <summary>(1 + patches, C)</summary>
    public Parameter PositionEmbedding { get; }

    public TrainableClipEmbeddings(ClipVisionConfig config, Parameter patchWeight, Parameter classEmbedding, Parameter positionEmbedding)
    {
        c = config;
        int p = c.PatchSize;
        Check(patchWeight, [c.HiddenSize, c.NumChannels, p, p]);
        Check(classEmbedding, [c.HiddenSize]);
        Check(positionEmbedding, [c.NumPositions, c.HiddenSize]);
        PatchWeight = patchWeight; ClassEmbedding = classEmbedding; PositionEmbedding = positionEmbedding;
    }

    static void Check(Parameter p, int[] shape)
    {
        if (!p.Shape.SequenceEqual(shape)) throw new ArgumentException($"{p.Name}: shape [{string.Join(", ", p.Shape)}], expected [{string.Join(", ", shape)}]");
    }

    public IEnumerable<Parameter> Parameters() => [ClassEmbedding, PatchWeight, PositionEmbedding];

    /// <summary>Floats of one image's im2col matrix: patches × 3·P·P.</summary>
    public int ColsPerImage => c.NumPatches * PatchLength;
    int PatchLength => c.NumChannels * c.PatchSize * c.PatchSize;

    /// <summary>
    /// pixels (B, 3, S, S) → output (B·T, C). <paramref name="cols"/> (B·patches, 3·P·P) receives the im2col matrix (kept
    /// for the weight gradient); <paramref name="patchOut"/> (B·patches, C) is scratch.
    /// </summary>
    public void Forward(Span<float> output, ReadOnlySpan<float> pixels, int batch, Span<float> cols, Span<float> patchOut)
    {
        int s = c.ImageSize, ch = c.NumChannels, hid = c.HiddenSize, patches = c.NumPatches, tokens = c.NumPositions;
        long perImage = (long)ch * s * s;
        if (pixels.Length != perImage * batch) throw new ArgumentException($"pixel_values must be ({batch}, {ch}, {s}, {s}); got {pixels.Length} values");
        Im2Col(pixels, batch, cols);
        int rows = batch * patches;
        MatMul.Forward(patchOut[..(rows * hid)], cols[..(rows * PatchLength)], PatchWeight.AsMatrix(hid, PatchLength), default, rows);
        for (int b = 0; b < batch; b++)
        {
            var o = output.Slice(b * tokens * hid, tokens * hid);
            ClassEmbedding.Data.CopyTo(o[..hid]);
            patchOut.Slice(b * patches * hid, patches * hid).CopyTo(o[hid..]);
            TensorPrimitives.Add(o, PositionEmbedding.Data, o);
        }
    }

    /// <summary>
    /// Accumulates the gradients of the three parameters from dOutput (B·T, C); <paramref name="cols"/> is the forward's
    /// im2col matrix, <paramref name="dPatch"/> (B·patches, C) scratch. A non-empty <paramref name="dPixels"/> (B, 3, S, S)
    /// receives += the input gradient (col2im of dPatch·W; the stride equals the kernel, so patches never overlap).
    /// </summary>
    public void Backward(ReadOnlySpan<float> dOutput, int batch, ReadOnlySpan<float> cols, Span<float> dPatch, Span<float> dPixels = default)
    {
        int hid = c.HiddenSize, patches = c.NumPatches, tokens = c.NumPositions, rows = batch * patches;
        // Positions: Σ over images of the whole (T, C) block; class token: Σ over images of row 0. Column sums in a fixed order.
        MatMul.BackwardBias(PositionEmbedding.Grad, dOutput, batch, tokens * hid);
        for (int b = 0; b < batch; b++)
        {
            TensorPrimitives.Add(ClassEmbedding.Grad, dOutput.Slice(b * tokens * hid, hid), ClassEmbedding.Grad);
            dOutput.Slice((b * tokens + 1) * hid, patches * hid).CopyTo(dPatch.Slice(b * patches * hid, patches * hid));
        }
        MatMul.BackwardWeight(PatchWeight.Grad, dPatch[..(rows * hid)], cols, rows, hid, PatchLength);
        if (dPixels.IsEmpty) return;
        var dCols = new float[rows * PatchLength];
        MatMul.BackwardInput(dCols, dPatch[..(rows * hid)], PatchWeight.AsMatrix(hid, PatchLength), rows);
        Col2ImAdd(dCols, batch, dPixels);
    }

    // Each patch becomes one row of cols in (channel, y, x) order, matching the conv kernel layout. One item = one image row of patches.
    void Im2Col(ReadOnlySpan<float> pixels, int batch, Span<float> cols)
    {
        if (cols.Length < (long)batch * ColsPerImage) throw new ArgumentException("cols shorter than batch × patches × 3·P·P");
        fixed (float* px = pixels) fixed (float* pc = cols)
        {
            var job = new PatchJob { Pixels = px, Cols = pc, C = c.NumChannels, S = c.ImageSize, P = c.PatchSize, Side = c.PatchesPerSide, ToCols = true };
            Workers.Run(ref job, batch * c.PatchesPerSide, 4);
        }
    }

    void Col2ImAdd(ReadOnlySpan<float> dCols, int batch, Span<float> dPixels)
    {
        long perImage = (long)c.NumChannels * c.ImageSize * c.ImageSize;
        if (dPixels.Length != perImage * batch) throw new ArgumentException("dPixels must be (B, 3, S, S)");
        fixed (float* px = dPixels) fixed (float* pc = dCols)
        {
            var job = new PatchJob { Pixels = px, Cols = pc, C = c.NumChannels, S = c.ImageSize, P = c.PatchSize, Side = c.PatchesPerSide, ToCols = false };
            Workers.Run(ref job, batch * c.PatchesPerSide, 4);
        }
    }

    /// <summary>im2col (pixels → cols) or col2im-add (cols → pixels +=) for one row of patches of one image per item.</summary>
    struct PatchJob : IParallelJob
    {
        public float* Pixels, Cols; public int C, S, P, Side; public bool ToCols;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            int patchLen = C * P * P;
            for (int item = start; item < end; item++)
            {
                int b = item / Side, py = item % Side;
                float* img = Pixels + (long)b * C * S * S;
                for (int px = 0; px < Side; px++)
                {
                    float* row = Cols + ((long)b * Side * Side + py * Side + px) * patchLen;
                    for (int k = 0; k < C; k++)
                        for (int y = 0; y < P; y++)
                        {
                            float* src = img + (long)k * S * S + (long)(py * P + y) * S + px * P;
                            float* dst = row + (k * P + y) * P;
                            if (ToCols) new ReadOnlySpan<float>(src, P).CopyTo(new Span<float>(dst, P));
                            else TensorPrimitives.Add(new ReadOnlySpan<float>(src, P), new ReadOnlySpan<float>(dst, P), new Span<float>(src, P));
                        }
                }
            }
        }
    }
}
