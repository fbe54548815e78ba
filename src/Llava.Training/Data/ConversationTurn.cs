namespace Llava.Training.Data;

/// <summary>One entry of a LLaVA record's <c>conversations</c> list: <c>{"from": "human"|"gpt", "value": ...}</c>.</summary>
public sealed record ConversationTurn(string From, string Value)
{
    public const string Human = "human";
    public const string Gpt = "gpt";
}

/// <summary>
/// One accepted record of a LLaVA-format data file.
/// </summary>
/// <param name="SourceIndex">Position of the record in the JSON list (for messages).</param>
/// <param name="Id">The record's <c>id</c> (numbers are kept as their JSON text; "#N" when absent).</param>
/// <param name="Image">The <c>image</c> path relative to the image folder, or null for a text-only record.</param>
/// <param name="Conversations">The turns as stored in the file (before <c>preprocess_multimodal</c>).</param>
public sealed record LlavaRecord(int SourceIndex, string Id, string? Image, IReadOnlyList<ConversationTurn> Conversations)
{
    public bool HasImage => Image != null;

    /// <summary>LLaVA's <c>lengths</c> entry: words of all turns (Python <c>str.split()</c>) + 128 if it has an image.</summary>
    public int Length => WordCount + (HasImage ? 128 : 0);

    /// <summary>LLaVA's <c>modality_lengths</c> entry: the word count, negated for text-only records.</summary>
    public int ModalityLength => HasImage ? WordCount : -WordCount;

    int WordCount => Conversations.Sum(c => PyStr.WordCount(c.Value));
}
