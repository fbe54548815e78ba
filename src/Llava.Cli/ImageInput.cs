using Llava.Vision;

namespace Llava.Cli;

/// <summary>Reads --image: a local file or an http(s) URL (as LLaVA's CLI accepts), with size limits.</summary>
internal static class ImageInput
{
    const long MaxDownloadBytes = 64L * 1024 * 1024;

    public static RgbImage Load(string pathOrUrl)
    {
        if (pathOrUrl.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || pathOrUrl.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60), MaxResponseContentBufferSize = MaxDownloadBytes };
            byte[] data;
            try { data = http.GetByteArrayAsync(pathOrUrl).GetAwaiter().GetResult(); }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                throw new CliException($"could not download image {pathOrUrl}: {e.Message}");
            }
            return ImageDecoder.Decode(data, pathOrUrl);
        }
        if (!File.Exists(pathOrUrl)) throw new CliException($"image not found: {pathOrUrl}");
        return ImageDecoder.Decode(pathOrUrl);
    }
}
