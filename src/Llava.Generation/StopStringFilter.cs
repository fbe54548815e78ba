namespace Llava.Generation;

/// <summary>
/// Streams text while watching for stop strings: text that could be the start of a stop string is held back until
/// it is known not to be one, so the separator (e.g. "###") never reaches the user.
/// </summary>
public sealed class StopStringFilter
{
    readonly string[] stops;
    string pending = "";

    public StopStringFilter(IEnumerable<string> stops) => this.stops = stops.Where(s => s.Length > 0).ToArray();

    /// <summary>Adds decoded text; returns what is safe to show. <paramref name="stopped"/> is set when a stop string appeared.</summary>
    public string Push(string text, out bool stopped)
    {
        stopped = false;
        if (stops.Length == 0) return text;
        pending += text;
        foreach (var s in stops)
        {
            int at = pending.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0)
            {
                stopped = true;
                var before = pending[..at];
                pending = "";
                return before;
            }
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        int hold = 0;
        foreach (var s in stops)
            for (int k = Math.Min(s.Length - 1, pending.Length); k > hold; k--)
                if (pending.AsSpan(pending.Length - k).SequenceEqual(s.AsSpan(0, k))) { hold = k; break; }
        var ready = pending[..^hold];
        pending = pending[^hold..];
        return ready;
    }

    /// <summary>Releases held-back text at the end.</summary>
    public string Flush()
    {
        var p = pending;
        pending = "";
        return p;
    }
}
