using System.Text;

namespace Llava.Training.Data;

/// <summary>Why a record was skipped (or, for <see cref="TokenizationMismatch"/>, had all its labels ignored).</summary>
public enum DataIssue
{
    /// <summary>The record is not an object, or a field has the wrong JSON type (id, image, conversations, from, value).</summary>
    InvalidRecord,
    /// <summary>No <c>conversations</c> list, an empty one, or one with no text at all.</summary>
    MissingConversations,
    /// <summary>A turn's <c>from</c> is neither "human" nor "gpt".</summary>
    UnknownRole,
    /// <summary>Turns do not alternate human / gpt (after LLaVA drops a leading gpt turn).</summary>
    RolesNotAlternating,
    /// <summary>The record cannot be expressed in the template: plain (stage 1) needs exactly two turns with
    /// "&lt;image&gt;" in the first; an image record may hold at most one image placeholder.</summary>
    UnsupportedFormat,
    /// <summary>The image file does not exist (or is empty).</summary>
    ImageMissing,
    /// <summary>The image file cannot be decoded (truncated, corrupt, unsupported, over the size limits).</summary>
    ImageCorrupt,
    /// <summary>
    /// LLaVA's "WARNING: tokenization mismatch": the round-by-round token count disagrees with the tokenized
    /// conversation, so every label is set to -100 (the sample is kept but teaches nothing). Not a skip.
    /// </summary>
    TokenizationMismatch,
}

/// <summary>One warning: which record, why, and the details.</summary>
public sealed record DataWarning(int SourceIndex, string Id, DataIssue Issue, string Message)
{
    public override string ToString() => $"record #{SourceIndex} (id \"{Id}\"): {Issue}: {Message}";
}

/// <summary>
/// What happened to the records of a data file: how many were accepted, how many skipped and why, and how many
/// had LLaVA's tokenization mismatch. Thread-safe; issues found lazily (a corrupt image when its sample is first
/// read, a mismatch when its sample is first tokenized) are added as they are found, once per record.
/// </summary>
public sealed class DataReport
{
    readonly object gate = new();
    readonly Dictionary<DataIssue, int> counts = new();
    readonly HashSet<(int, DataIssue)> seen = new();
    readonly List<DataWarning> warnings = new();
    readonly int maxStored;
    readonly Action<DataWarning>? sink;

    public DataReport(int maxStoredWarnings = 1000, Action<DataWarning>? onWarning = null)
    {
        maxStored = maxStoredWarnings;
        sink = onWarning;
    }

    /// <summary>Records in the file.</summary>
    public int TotalRecords { get; internal set; }
    /// <summary>Records that passed the load-time checks.</summary>
    public int AcceptedAtLoad { get; internal set; }

    /// <summary>Number of records per issue.</summary>
    public IReadOnlyDictionary<DataIssue, int> Counts
    {
        get { lock (gate) return new Dictionary<DataIssue, int>(counts); }
    }

    public int Count(DataIssue issue)
    {
        lock (gate) return counts.GetValueOrDefault(issue);
    }

    /// <summary>Records skipped so far (every issue except <see cref="DataIssue.TokenizationMismatch"/>).</summary>
    public int Skipped
    {
        get { lock (gate) return counts.Where(kv => kv.Key != DataIssue.TokenizationMismatch).Sum(kv => kv.Value); }
    }

    public int TokenizationMismatches => Count(DataIssue.TokenizationMismatch);

    /// <summary>The first warnings (up to the configured maximum), in the order found.</summary>
    public IReadOnlyList<DataWarning> Warnings
    {
        get { lock (gate) return warnings.ToArray(); }
    }

    /// <summary>Adds an issue for a record; returns false (and changes nothing) if that record already has it.</summary>
    internal bool Add(int sourceIndex, string id, DataIssue issue, string message)
    {
        var w = new DataWarning(sourceIndex, id, issue, message);
        lock (gate)
        {
            if (!seen.Add((sourceIndex, issue))) return false;
            counts[issue] = counts.GetValueOrDefault(issue) + 1;
            if (warnings.Count < maxStored) warnings.Add(w);
        }
        sink?.Invoke(w);
        return true;
    }

    /// <summary>One line per issue, e.g. "8 records: 5 accepted, 3 skipped (ImageMissing 1, UnknownRole 2), 0 tokenization mismatches".</summary>
    public override string ToString()
    {
        var c = Counts;
        var sb = new StringBuilder();
        sb.Append($"{TotalRecords} records: {AcceptedAtLoad} accepted at load, {Skipped} skipped");
        var skips = c.Where(kv => kv.Key != DataIssue.TokenizationMismatch).OrderBy(kv => kv.Key).ToList();
        if (skips.Count > 0) sb.Append(" (").Append(string.Join(", ", skips.Select(kv => $"{kv.Key} {kv.Value}"))).Append(')');
        sb.Append($", {c.GetValueOrDefault(DataIssue.TokenizationMismatch)} tokenization mismatches (labels fully ignored)");
        return sb.ToString();
    }
}

/// <summary>A data file that cannot be used at all (unreadable, not JSON, not a list of records).</summary>
public sealed class LlavaDataException : IOException
{
    public LlavaDataException(string message, Exception? inner = null) : base(message, inner) { }
}
