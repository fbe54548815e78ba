namespace Llava.Text;

/// <summary>
/// One turn of a conversation. <paramref name="Text"/> null (or empty) means "the model speaks next".
/// <paramref name="HasImage"/> marks LLaVA's <c>(text, image, mode)</c> tuple messages: when the first
/// message has it, <see cref="Conversation.GetPrompt"/> moves the image placeholder to the front.
/// </summary>
public sealed record ConversationMessage(string Role, string? Text, bool HasImage = false);
