using System.Runtime.InteropServices;
using SkiaSharp;

namespace Llava.Vision;

/// <summary>
/// Decodes JPEG, PNG, WebP, BMP and GIF (first frame) to <see cref="RgbImage"/> with SkiaSharp, matching
/// PIL's <c>Image.open(f).convert("RGB")</c> pixel values where the codecs allow:
/// <list type="bullet">
/// <item>Alpha is dropped, not composited: the stored (un-premultiplied) RGB of every pixel is kept, as
/// <c>convert("RGB")</c> does.</item>
/// <item>No colour management: embedded ICC profiles are ignored, as PIL ignores them.</item>
/// <item>Grayscale, palette and CMYK sources come out as RGB.</item>
/// <item>16-bit PNG channels keep their high byte (Skia strips the low byte; PIL's "RGB;16B" unpacker truncates
/// the same way). Exception: PIL opens 16-bit grayscale as mode "I;16" and <c>convert("RGB")</c> then clips every
/// value above 255 to white; we keep the high byte instead, the meaningful picture.</item>
/// </list>
/// Deliberate difference: the EXIF orientation tag IS applied (like PIL's <c>ImageOps.exif_transpose</c>).
/// HF transformers and LLaVA load with plain <c>Image.open().convert("RGB")</c>, which ignores it, but our
/// product spec asks for upright photos; for images without an orientation tag (all reference fixtures)
/// the two agree.
/// </summary>
public static class ImageDecoder
{
    public static RgbImage Decode(string path, ImageLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        limits ??= ImageLimits.Default;
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new ImageDecodeException(path, "file not found");
            if (info.Length > limits.MaxEncodedBytes)
                throw new ImageDecodeException(path, $"file is {info.Length} bytes, over the {limits.MaxEncodedBytes}-byte limit");
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ImageDecodeException(path, "cannot read file: " + e.Message, e);
        }
        return Decode(bytes, path, limits);
    }

    public static RgbImage Decode(ReadOnlySpan<byte> data, string? nameForErrors = null, ImageLimits? limits = null)
    {
        limits ??= ImageLimits.Default;
        string name = nameForErrors ?? "<image data>";
        if (data.IsEmpty) throw new ImageDecodeException(name, "empty image data");
        if (data.Length > limits.MaxEncodedBytes)
            throw new ImageDecodeException(name, $"encoded image is {data.Length} bytes, over the {limits.MaxEncodedBytes}-byte limit");
        if (ImageHeader.TryReadSize(data, out var headerFormat, out long hw, out long hh)
            && (hw > limits.MaxSide || hh > limits.MaxSide || hw * hh > limits.MaxPixels))
            throw new ImageDecodeException(name,
                $"{headerFormat} header claims {hw}x{hh} pixels ({hw * hh / 1e6:0.#} megapixels), over the limit of {limits.MaxPixels / 1e6:0.#} megapixels / {limits.MaxSide} pixels per side");
        try
        {
            using var skData = SKData.CreateCopy(data);
            using var codec = SKCodec.Create(skData)
                ?? throw new ImageDecodeException(name, $"unrecognised image format or corrupt header ({data.Length} bytes, starts with {Signature(data)})");
            var rgb = DecodePixels(codec, name, limits);
            // SKEncodedOrigin values are the EXIF orientation numbers 1..8.
            return ExifOrientation.Apply(rgb, (int)codec.EncodedOrigin);
        }
        catch (ImageDecodeException)
        {
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ImageDecodeException(name, "decoding failed: " + e.Message, e);
        }
    }

    static unsafe RgbImage DecodePixels(SKCodec codec, string name, ImageLimits limits)
    {
        var header = codec.Info;
        int w = header.Width, h = header.Height;
        string format = codec.EncodedFormat.ToString().ToUpperInvariant();
        // Checked on the header only: nothing proportional to the claimed size is allocated before this.
        if (w <= 0 || h <= 0)
            throw new ImageDecodeException(name, $"{format} header has invalid dimensions {w}x{h}");
        if (w > limits.MaxSide || h > limits.MaxSide || (long)w * h > limits.MaxPixels)
            throw new ImageDecodeException(name,
                $"{format} image is {w}x{h} ({(long)w * h / 1e6:0.#} megapixels), over the limit of {limits.MaxPixels / 1e6:0.#} megapixels / {limits.MaxSide} pixels per side");

        // Unpremul keeps colour channels of translucent pixels as stored; a null colour space disables
        // colour conversion (PIL applies none either).
        var target = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul, null);
        long rowBytes = (long)w * 4;
        nuint size = (nuint)(rowBytes * h);
        // Zeroed so pixels a codec leaves untouched (e.g. transparent GIF pixels) are deterministic.
        byte* buf = (byte*)NativeMemory.AllocZeroed(size);
        try
        {
            var result = codec.GetPixels(target, (IntPtr)buf, (int)rowBytes, SKCodecOptions.Default);
            if (result != SKCodecResult.Success)
                throw new ImageDecodeException(name, $"{format} {w}x{h}: {Describe(result)}");
            var image = new RgbImage(w, h);
            var dst = image.Pixels;
            Parallel.For(0, h, new ParallelOptions { MaxDegreeOfParallelism = h * (long)w > 1 << 20 ? -1 : 1 }, y =>
            {
                byte* src = buf + y * rowBytes;
                int d = y * w * 3;
                for (int x = 0; x < w; x++, src += 4, d += 3)
                {
                    dst[d] = src[0];
                    dst[d + 1] = src[1];
                    dst[d + 2] = src[2];
                }
            });
            return image;
        }
        finally
        {
            NativeMemory.Free(buf);
        }
    }

    static string Describe(SKCodecResult result) => result switch
    {
        SKCodecResult.IncompleteInput => "image data is truncated (incomplete input)",
        SKCodecResult.ErrorInInput => "image data is corrupt",
        SKCodecResult.InvalidConversion => "pixel format cannot be converted to RGB",
        SKCodecResult.Unimplemented => "this image variant is not supported by the decoder",
        _ => "decoder error " + result,
    };

    static string Signature(ReadOnlySpan<byte> data) =>
        "0x" + Convert.ToHexString(data[..Math.Min(8, data.Length)]);
}
