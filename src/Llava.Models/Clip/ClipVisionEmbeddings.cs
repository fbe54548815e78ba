using Llava.Models.Loading;
using Llava.Tensors;

namespace Llava.Models.Clip;

/// <summary>
/// CLIP's input embeddings: a stride-P convolution without bias cuts the image into patches, a learned class token
/// goes first, learned position embeddings are added. Port of transformers' CLIPVisionEmbeddings.
/// </summary>
public sealed class ClipVisionEmbeddings
{
    readonly ClipVisionConfig config;
    readonly WeightMatrix patchWeight;     // (C, 3·P·P): the conv kernel (C, 3, P, P) read as rows
    readonly float[] classEmbedding;       // (C)
    readonly float[] positionEmbedding;    // (1 + patches, C)

    public ClipVisionEmbeddings(WeightReader r, string prefix, ClipVisionConfig c)
    {
        config = c;
        int p = c.PatchSize, ch = c.NumChannels;
        patchWeight = r.Matrix(prefix + "patch_embedding.weight", c.HiddenSize, ch * p * p, [c.HiddenSize, ch, p, p]);
        classEmbedding = r.Vector(prefix + "class_embedding", c.HiddenSize);
        positionEmbedding = r.Vector(prefix + "position_embedding.weight", c.NumPositions, c.HiddenSize);
        if (r.Has(prefix + "patch_embedding.bias")) r.Problem($"unexpected '{prefix}patch_embedding.bias': CLIP's patch embedding has no bias");
    }

    /// <summary>pixels (3, S, S) → embeddings (1 + patches, C).</summary>
    public void Forward(Span<float> output, ReadOnlySpan<float> pixels)
    {
        int s = config.ImageSize, p = config.PatchSize, side = config.PatchesPerSide, ch = config.NumChannels, c = config.HiddenSize;
        if (pixels.Length != ch * s * s) throw new ArgumentException($"pixel_values must be ({ch}, {s}, {s}); got {pixels.Length} values");
        int patchLen = ch * p * p, patches = side * side;

        // im2col: each patch becomes one row in (channel, y, x) order, matching the conv kernel layout.
        var cols = new float[patches * patchLen];
        for (int py = 0; py < side; py++)
            for (int px = 0; px < side; px++)
            {
                int row = (py * side + px) * patchLen;
                for (int k = 0; k < ch; k++)
                    for (int y = 0; y < p; y++)
                        pixels.Slice(k * s * s + (py * p + y) * s + px * p, p).CopyTo(cols.AsSpan(row + (k * p + y) * p, p));
            }
        MatMul.Forward(output.Slice(c, patches * c), cols, patchWeight, default, patches);
        classEmbedding.CopyTo(output[..c]);
        System.Numerics.Tensors.TensorPrimitives.Add(output[..((patches + 1) * c)], positionEmbedding, output[..((patches + 1) * c)]);
    }
}
