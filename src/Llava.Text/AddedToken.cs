namespace Llava.Text;

/// <summary>
/// A token matched verbatim in the input before SentencePiece runs (Hugging Face "added token"),
/// e.g. <c>&lt;s&gt;</c>, <c>&lt;image&gt;</c> or <c>&lt;pad&gt;</c>.
/// </summary>
/// <param name="Id">Token id.</param>
/// <param name="Content">Exact text of the token.</param>
/// <param name="Special">Marked special in <c>added_tokens_decoder</c>.</param>
/// <param name="LStrip">Whitespace to the left of the token is removed.</param>
/// <param name="RStrip">Whitespace to the right of the token is removed.</param>
/// <param name="SingleWord">Only matches as a whole word.</param>
/// <param name="Normalized">Hugging Face's "normalized" flag (kept for completeness; the slow tokenizer ignores it).</param>
public sealed record AddedToken(int Id, string Content, bool Special, bool LStrip = false, bool RStrip = false,
    bool SingleWord = false, bool Normalized = false);
