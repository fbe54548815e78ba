namespace Llava.Generation;

/// <summary>Why generation ended.</summary>
public enum FinishReason
{
    None,
    /// <summary>EOS token or a stop string.</summary>
    Stop,
    /// <summary>max_new_tokens reached.</summary>
    Length,
    /// <summary>The context window is full: the answer was cut, nothing was overwritten.</summary>
    ContextFull,
    Cancelled,
}

/// <summary>One step of streamed output: the token and the text it completed (may be empty while a UTF-8 character is split).</summary>
public readonly record struct GeneratedToken(int Id, string Text, FinishReason Finish = FinishReason.None);
