using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Llava.Formats;
using Llava.Formats.Safetensors;
using Llava.Models.Llava;
using Llava.Models.Loading;
using Llava.Tensors;
using Llava.Tensors.Quantization;
using Llava.Training.Model;
using Llava.Training.Optim;
using Llava.Training.Trainer;

namespace Llava.Tests;

/// <summary>
/// QLoRA (--bits 4|8): the quantized-W input gradient against the scalar reference, LoRA gradients of a quantized base
/// against an f32 model holding dequantize(quantize(W)), the memory held, and a short run that learns.
/// </summary>
public sealed class QLoraTests(ITestOutputHelper output) : IDisposable
{
    readonly TempDir dir = new();
    public void Dispose() => dir.Dispose();

    static string OriginalDir => Fixtures.TinyPath("original", "llava-v1.5-tiny");

    static unsafe byte[] Quantize(GgmlType type, float[] w, int rows, int cols)
    {
        long rowBytes = GgmlTypeInfo.RowBytes(type, cols);
        var q = new byte[rowBytes * rows];
        for (int r = 0; r < rows; r++)
            GgmlQuant.QuantizeReference(type, w.AsSpan(r * cols, cols), q.AsSpan((int)(r * rowBytes), (int)rowBytes));
        return q;
    }

    [Theory]
    [InlineData(GgmlType.Q8_0, 7, 96, 64)]
    [InlineData(GgmlType.Q8_0, 200, 64, 416)]      // two token row blocks, ragged column block (416 = 3·128 + 32)
    [InlineData(GgmlType.Q4_0, 13, 40, 160)]
    [InlineData(GgmlType.Q4_K, 9, 24, 768)]        // 256-blocks straddle the 128-column blocks
    [InlineData(GgmlType.Q6_K, 5, 17, 512)]
    [InlineData(GgmlType.Q5_0, 3, 300, 96)]        // k spans two Kc slices
    [InlineData(GgmlType.Q8_0, 1, 33, 64)]
    public unsafe void BackwardInput_QuantizedW_MatchesScalarReference(GgmlType type, int tokens, int outF, int inF)
    {
        var rng = new Random(tokens * 31 + inF);
        float R() => (float)(rng.NextDouble() * 2 - 1);
        var w = Enumerable.Range(0, outF * inF).Select(_ => R()).ToArray();
        var dy = Enumerable.Range(0, tokens * outF).Select(_ => R()).ToArray();
        var start = Enumerable.Range(0, tokens * inF).Select(_ => R()).ToArray();
        var q = Quantize(type, w, outF, inF);
        fixed (byte* pq = q)
        {
            var m = new WeightMatrix(type, outF, inF, pq);
            var fast = start.ToArray();
            MatMul.BackwardInput(fast, dy, m, tokens);
            var reference = start.ToArray();
            BackwardReference.MatMul(reference, default, default, dy, default, m, tokens);
            double err = Numerics.RelativeError(fast, reference);
            output.WriteLine($"{type} T={tokens} out={outF} in={inF}: rel err {err:E2}");
            Assert.InRange(err, 0, 1e-6);

            // Equal to the f32 kernel on the dequantized matrix (the same packing and micro-kernels).
            var deq = new float[outF * inF];
            for (int r = 0; r < outF; r++) m.ReadRow(r, deq.AsSpan(r * inF, inF));
            var viaF32 = start.ToArray();
            fixed (float* pd = deq) MatMul.BackwardInput(viaF32, dy, new WeightMatrix(DType.F32, outF, inF, pd), tokens);
            Assert.Equal(viaF32, fast);

            // The training forward: f32 activations times the exact dequantization (not inference's 8-bit activations).
            var x = Enumerable.Range(0, tokens * inF).Select(_ => R()).ToArray();
            var y = new float[tokens * outF];
            MatMul.ForwardDequantized(y, x, m, default, tokens);
            var yF32 = new float[tokens * outF];
            fixed (float* pd = deq) MatMul.Forward(yF32, x, new WeightMatrix(DType.F32, outF, inF, pd), default, tokens);
            if (tokens > 1) Assert.Equal(yF32, y);   // same packed GEMM (a single token takes the f32 matvec: same sums, another order)
            else Assert.InRange(Numerics.RelativeError(y, yF32), 0, 1e-6);
        }
    }

    /// <summary>A copy of the tiny checkpoint whose LLaMA layer linears hold dequantize(quantize(W)) in f32, as --bits would quantize them.</summary>
    string DequantizedCopy(int bits)
    {
        string d = Path.Combine(dir.Path, $"deq{bits}");
        Directory.CreateDirectory(d);
        foreach (var f in Directory.GetFiles(OriginalDir).Where(f => !f.EndsWith("model.safetensors")))
            File.Copy(f, Path.Combine(d, Path.GetFileName(f)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(d, "config.json")))!.AsObject();
        config["mm_vision_tower"] = Fixtures.TinyPath("original", "clip-vit-tiny-patch14-336");
        File.WriteAllText(Path.Combine(d, "config.json"), config.ToJsonString());
        var quantizer = new LoadTimeQuantizer(bits);
        using var src = SafetensorsFile.Open(Path.Combine(OriginalDir, "model.safetensors"));
        var entries = new List<SafetensorsWriter.Entry>();
        foreach (var name in src.Names)
        {
            var t = src.Get(name);
            bool linear = name.StartsWith("model.layers.") && (name.Contains(".self_attn.") || name.Contains(".mlp.")) && name.EndsWith(".weight");
            var (block, _) = GgmlTypeInfo.Layout(quantizer.TypeFor((int)t.Shape[^1]))!.Value;
            if (!linear || t.Shape[1] % block != 0) { entries.Add(new SafetensorsWriter.Entry(name, t.DType, t.Shape, t.Bytes.ToArray())); continue; }
            int rows = (int)t.Shape[0], cols = (int)t.Shape[1];
            var type = quantizer.TypeFor(cols);
            var q = Quantize(type, t.ToFloat32(), rows, cols);
            var deq = new float[rows * cols];
            long rb = GgmlTypeInfo.RowBytes(type, cols);
            for (int r = 0; r < rows; r++) GgmlQuant.Dequantize(type, q.AsSpan((int)(r * rb), (int)rb), deq.AsSpan(r * cols, cols));
            entries.Add(SafetensorsWriter.F32(name, t.Shape, deq));
        }
        SafetensorsWriter.Write(Path.Combine(d, "model.safetensors"), entries);
        return d;
    }

    static void SetRandomB(TrainableLlava model)
    {
        // B = 0 at init would stop every gradient at A; give it values so both factors and dX through LoRA are exercised.
        var rng = new Random(11);
        foreach (var a in model.LoraAdapters())
            for (int i = 0; i < a.B.Length; i++) a.B.Data[i] = (float)((rng.NextDouble() * 2 - 1) * 0.1);
    }

    [Theory]
    [InlineData(8)]
    [InlineData(4)]
    public void LoraGradients_OnQuantizedBase_EqualAnF32ModelOfTheDequantizedWeights(int bits)
    {
        var batch = GradientParityTests.LoadBatch("lora__batch_ft-2_ft-3", "lora");
        var options = new LoraOptions(4, 8, 0);

        using var frozen = LlavaModel.Load(OriginalDir);
        using var q = new TrainableLlava(frozen, TrainingMode.Lora, options, seed: 1, baseBits: bits);
        using var frozenDeq = LlavaModel.Load(DequantizedCopy(bits));
        using var f = new TrainableLlava(frozenDeq, TrainingMode.Lora, options, seed: 1);
        SetRandomB(q); SetRandomB(f);

        double lq = q.ForwardBackward(batch, out int nq);
        double lf = f.ForwardBackward(batch, out int nf);
        Assert.Equal(nf, nq);
        output.WriteLine($"{bits}-bit: loss {lq:F7} vs f32-of-dequantized {lf:F7}; frozen base {q.FrozenBaseBytes} B (stored {q.FrozenBaseSourceBytes} B)");
        Assert.InRange(Math.Abs(lq - lf) / lf, 0, 1e-6);
        var byName = f.Parameters.ToDictionary(p => p.Name);
        double worst = 0;
        foreach (var p in q.Parameters)
        {
            double err = Numerics.RelativeError(p.Grad, byName[p.Name].Grad);
            worst = Math.Max(worst, err);
            Assert.True(err <= 1e-5, $"{p.Name}: relative error {err:E2}");
        }
        output.WriteLine($"worst gradient relative error {worst:E2}");

        // Memory: q/k/v/o/gate/up (64-wide rows) quantized, down_proj (172-wide rows, not a whole number of 32-blocks) kept in bf16.
        long perLayerBf16 = 2L * (4 * 64 * 64 + 2 * 172 * 64 + 64 * 172);
        Assert.Equal(2 * perLayerBf16, q.FrozenBaseSourceBytes);
        long quantRow = bits == 8 ? 2 * 34 : 2 * 18;   // Q8_0: 34 B per 32; Q4_0: 18 B per 32 (64 is not a multiple of 256)
        long expected = 2 * (4 * 64 * quantRow + 2 * 172 * quantRow + 64 * 172 * 2L);
        Assert.Equal(expected, q.FrozenBaseBytes);
        Assert.Equal(bits, q.BaseBits);
    }

    [Fact]
    public void QLoraRun_DecreasesTheLoss_AndSavesAnAdapter()
    {
        string outDir = Path.Combine(dir.Path, "qlora");
        var options = new TrainerOptions
        {
            Mode = TrainingMode.Lora, Bits = 4, ModelPath = OriginalDir, DataPath = Fixtures.TinyPath("train", "data", "finetune.json"),
            ImageFolder = Fixtures.TinyPath("images"), OutputDir = outDir, PerDeviceTrainBatchSize = 4, MaxSteps = 3, LearningRate = 1e-2,
            LrSchedulerType = "constant", LoraR = 8, LoraAlpha = 16, SaveSteps = 0, NoResume = true,
        };
        using var trainer = new LlavaTrainer(options);
        Assert.Equal(4, trainer.Model.BaseBits);
        Assert.True(trainer.Model.FrozenBaseBytes < trainer.Model.FrozenBaseSourceBytes);
        var result = trainer.Train();
        var losses = result.History.Select(m => m.Loss).ToArray();
        output.WriteLine("losses: " + string.Join(", ", losses.Select(l => l.ToString("F4"))));
        Assert.True(losses[^1] < losses[0] * 0.85, $"loss did not decrease: {losses[0]:F4} → {losses[^1]:F4}");
        Assert.True(File.Exists(Path.Combine(outDir, "adapter_model.safetensors")));
    }

    [Fact]
    public void Bits_OutsideLora_AreRejected()
    {
        var o = new TrainerOptions { Mode = TrainingMode.Finetune, Bits = 4, ModelPath = "m", DataPath = "d", OutputDir = "o" };
        Assert.Throws<ArgumentException>(o.Validate);
        Assert.Throws<ArgumentException>(new TrainerOptions { Mode = TrainingMode.Lora, Bits = 3, ModelPath = "m", DataPath = "d", OutputDir = "o" }.Validate);
    }
}
