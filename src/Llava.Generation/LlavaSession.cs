using System.Numerics.Tensors;
using Llava.Models.Llama;
using Llava.Models.Llava;
using Llava.Text;
using Llava.Vision;

namespace Llava.Generation;

/// <summary>
/// One conversation with a <see cref="LlavaModel"/>: owns the KV cache and activation buffers. Each prompt is
/// compared with what the cache already holds and only the new suffix is computed, so a multi-turn chat pays
/// only for its new turn. Not thread-safe: one session per conversation; the model itself is shared.
/// Dispose releases the KV cache's native memory (else the finalizer does).
/// </summary>
public sealed class LlavaSession : IDisposable
{
    /// <summary>Prompt positions processed per forward pass; bounds activation memory on long prompts.</summary>
    public const int PrefillChunk = 512;

    readonly LlavaModel model;
    readonly LlamaModel lm;
    readonly KvCache cache;
    readonly LlamaScratch scratch;
    readonly List<long> cachedKeys = new();          // what each cache position holds: a token id, or an image row
    readonly List<int> contextIds = new();           // text ids of the conversation (repetition penalty)
    readonly Dictionary<string, ImageFeatures> imageCache = new();
    readonly float[] lastLogits;                     // (V) logits after the last fed position
    readonly float[] stepHidden;                     // (H) decode-step activations, reused every token
    float[] chunkHidden = [];                        // (chunk, H) prefill activations, reused by every chunk and prompt
    long nextImageKey = 1;

    public LlavaModel Model => model;
    public int ContextSize => cache.Capacity;
    /// <summary>Positions in the KV cache.</summary>
    public int Position => cache.Length;
    public long CacheBytes => cache.Bytes;
    /// <summary>Element type of the KV cache.</summary>
    public KvCacheType CacheType => cache.Type;
    /// <summary>Positions the last <see cref="Prefill"/> actually computed (the rest came from the cache).</summary>
    public int LastPrefillComputed { get; private set; }

    /// <param name="contextSize">KV cache positions; defaults to the model's context length.</param>
    /// <param name="kvCache">KV cache element type; defaults to <see cref="DefaultKvCacheType"/>.</param>
    public LlavaSession(LlavaModel model, int? contextSize = null, KvCacheType? kvCache = null)
    {
        this.model = model;
        lm = model.Language;
        int ctx = contextSize ?? model.Config.ContextLength;
        if (ctx > model.Config.ContextLength)
            throw new ArgumentOutOfRangeException(nameof(contextSize), $"--ctx-size {ctx} exceeds the model's context length {model.Config.ContextLength}");
        cache = new KvCache(lm.Config, ctx, kvCache ?? DefaultKvCacheType(model));
        scratch = new LlamaScratch(lm.Config, 1);
        lastLogits = new float[lm.VocabSize];
        stepHidden = new float[lm.Config.HiddenSize];
    }

    /// <summary>
    /// The KV cache type when none is asked for: f16 (llama.cpp's default; half the memory and attention reads) when
    /// the language model is already approximate — block-quantized (a quantized GGUF, --load-8bit / --load-4bit) or
    /// a GGUF of half-precision weights — and f32 for float checkpoints and f32 GGUFs, whose logits then match the
    /// reference implementations to f32 rounding.
    /// </summary>
    public static KvCacheType DefaultKvCacheType(LlavaModel model) =>
        model.Language.HasQuantizedWeights || (model.Config.Layout == CheckpointLayout.Gguf && !model.Language.AllF32Weights)
            ? KvCacheType.F16 : KvCacheType.F32;

    public void Dispose() => cache.Dispose();

    /// <summary>
    /// Tokenizes a fully formatted prompt with literal &lt;image&gt; markers the way the checkpoint expects:
    /// llava-hf maps the marker to its added token (image_token_index), the original layout uses LLaVA's
    /// tokenizer_image_token (−200 placeholders, each chunk encoded separately).
    /// </summary>
    public int[] Tokenize(string prompt)
    {
        if (model.Config.MmUseImStartEnd) prompt = prompt.Replace("<image>", "<im_start><image><im_end>");
        return model.Config.Layout == CheckpointLayout.HuggingFace
            ? model.Tokenizer.Encode(prompt)
            : model.Tokenizer.TokenizerImageToken(prompt, LlavaConfig.OriginalImageTokenIndex);
    }

    /// <summary>Preprocesses and encodes an image; the same pixels are encoded once per session.</summary>
    public ImageFeatures EncodeImage(RgbImage image, ImageAspectMode? aspect = null) =>
        EncodePixels(model.PreprocessImage(image, aspect));

    /// <summary>Wraps features computed elsewhere (N, hidden) so a prompt can use them.</summary>
    public ImageFeatures AddImageFeatures(float[] features)
    {
        int h = lm.Config.HiddenSize;
        if (features.Length % h != 0) throw new ArgumentException($"image features must be (N, {h})");
        return new ImageFeatures(features, features.Length / h, nextImageKey++);
    }

    public ImageFeatures EncodePixels(float[] pixels)
    {
        string hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(pixels.AsSpan())));
        if (imageCache.TryGetValue(hash, out var known)) return known;
        var features = model.EncodeImage(pixels);
        var result = new ImageFeatures(features, model.Config.NumImageTokens, nextImageKey++);
        imageCache[hash] = result;
        return result;
    }

    /// <summary>Forgets the conversation (the cache is reused, not reallocated).</summary>
    public void Reset()
    {
        cache.SetLength(0);
        cachedKeys.Clear();
        contextIds.Clear();
    }

    /// <summary>
    /// Feeds a tokenized prompt (with image placeholders) and returns the logits of its last <paramref name="logitRows"/>
    /// positions, (rows, V). Positions shared with the cached conversation are not recomputed.
    /// </summary>
    public float[] Prefill(ReadOnlySpan<int> ids, IReadOnlyList<ImageFeatures> images, int logitRows = 1)
    {
        int placeholder = model.Config.ImageTokenIndex;
        int markers = 0;
        foreach (int id in ids) if (id == placeholder) markers++;
        if (markers != images.Count)
            throw new ArgumentException($"the prompt has {markers} image marker(s) (<image>) but {images.Count} image(s) were given");

        // The expanded sequence: one key per position.
        var keys = new List<long>(ids.Length + images.Sum(i => i.Rows));
        var texts = new List<int>(ids.Length);
        int imageIndex = 0;
        foreach (int id in ids)
        {
            if (id == placeholder)
            {
                var img = images[imageIndex++];
                for (int r = 0; r < img.Rows; r++) keys.Add(-((img.Key << 20) + r) - 1);
            }
            else
            {
                if (id < 0 || id >= lm.VocabSize) throw new ArgumentException($"token id {id} is outside the vocabulary (0..{lm.VocabSize - 1})");
                keys.Add(id);
                texts.Add(id);
            }
        }
        int total = keys.Count;
        if (total == 0) throw new ArgumentException("empty prompt");
        if (total > cache.Capacity) throw new ContextOverflowException(total, cache.Capacity);
        logitRows = Math.Clamp(logitRows, 1, total);

        int common = 0;
        int limit = Math.Min(cachedKeys.Count, total);
        while (common < limit && cachedKeys[common] == keys[common]) common++;
        common = Math.Min(common, total - logitRows);   // the rows whose logits we return must be recomputed
        cache.SetLength(common);
        LastPrefillComputed = total - common;
        cachedKeys.RemoveRange(common, cachedKeys.Count - common);

        var imageRows = new Dictionary<long, ImageFeatures>();
        foreach (var img in images) imageRows[img.Key] = img;

        int h = lm.Config.HiddenSize, v = lm.VocabSize;
        var logits = new float[logitRows * v];
        int pos = common;
        while (pos < total)
        {
            int remaining = total - pos;
            int take = remaining <= PrefillChunk + logitRows ? remaining : PrefillChunk;
            if (chunkHidden.Length < take * h) chunkHidden = new float[take * h];
            var hidden = chunkHidden.AsSpan(0, take * h);
            for (int t = 0; t < take; t++)
            {
                long key = keys[pos + t];
                var row = hidden.Slice(t * h, h);
                if (key >= 0) lm.Embed(row, [(int)key]);
                else
                {
                    long k = -key - 1;
                    var img = imageRows[k >> 20];
                    int r = (int)(k & ((1 << 20) - 1));
                    img.Features.AsSpan(r * h, h).CopyTo(row);
                }
            }
            lm.Forward(hidden, take, cache, scratch);
            for (int t = 0; t < take; t++) cachedKeys.Add(keys[pos + t]);
            pos += take;
            if (pos == total)
                lm.Logits(logits, hidden.Slice((take - logitRows) * h, logitRows * h), logitRows);
        }
        logits.AsSpan((logitRows - 1) * v, v).CopyTo(lastLogits);
        contextIds.Clear();
        contextIds.AddRange(texts);
        return logits;
    }

    /// <summary>Feeds one token and leaves its logits in the session (the decode step: no allocation).</summary>
    public void Step(int id)
    {
        lm.Embed(stepHidden, [id]);
        lm.Forward(stepHidden, 1, cache, scratch);
        lm.Logits(lastLogits, stepHidden, 1);
        cachedKeys.Add(id);
        contextIds.Add(id);
    }

    /// <summary>Logits after the last fed position.</summary>
    public ReadOnlySpan<float> LastLogits => lastLogits;

    /// <summary>
    /// Generates after <see cref="Prefill"/>, streaming tokens. Stops at EOS, a stop string, max_new_tokens or a full
    /// context; the last item carries the finish reason.
    /// </summary>
    public IEnumerable<GeneratedToken> Generate(GenerationOptions options, CancellationToken cancel = default)
    {
        var sampler = new Sampler(options, lastLogits.Length);
        var decoder = model.Tokenizer.CreateStreamingDecoder();
        var stops = new StopStringFilter(options.StopStrings);
        var work = new float[lastLogits.Length];
        var eos = new HashSet<int>(lm.Config.EosTokenIds) { model.Tokenizer.EosId };
        for (int step = 0; step < options.MaxNewTokens; step++)
        {
            if (cancel.IsCancellationRequested) { yield return new GeneratedToken(-1, stops.Flush(), FinishReason.Cancelled); yield break; }
            lastLogits.CopyTo(work, 0);
            int id = sampler.Sample(work, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(contextIds));
            if (options.StopAtEos && eos.Contains(id))
            {
                yield return new GeneratedToken(id, stops.Flush(), FinishReason.Stop);
                yield break;
            }
            string text = stops.Push(decoder.Push(id), out bool stopped);
            if (stopped)
            {
                yield return new GeneratedToken(id, text, FinishReason.Stop);
                yield break;
            }
            if (step == options.MaxNewTokens - 1)
            {
                yield return new GeneratedToken(id, text + stops.Flush(), FinishReason.Length);
                yield break;
            }
            if (cache.Remaining == 0)
            {
                yield return new GeneratedToken(id, text + stops.Flush(), FinishReason.ContextFull);
                yield break;
            }
            yield return new GeneratedToken(id, text);
            Step(id);
        }
    }
}
