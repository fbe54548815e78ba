using Llava.Text;

namespace Llava.Training.Data;

/// <summary>LLaVA's <c>image_aspect_ratio</c> data argument.</summary>
public enum ImageAspectRatio
{
    /// <summary>Anything but "pad" in LLaVA: the CLIP processor alone (shortest-edge resize + center crop).</summary>
    Square,
    /// <summary><c>expand2square</c> with the processor's mean colour, then the CLIP processor (LLaVA-1.5 finetune).</summary>
    Pad,
}

/// <summary>How much of every image is checked when the data file is loaded (images are always decoded lazily for training).</summary>
public enum ImageCheck
{
    /// <summary>The file exists and is not empty (cheap; a corrupt file is found, skipped and counted when its sample is first used).</summary>
    Exists,
    /// <summary>Decode every image once at load time (slow for big sets; finds corrupt files up front). Pixels are not kept.</summary>
    Decode,
}

/// <summary>
/// LLaVA's <c>DataArguments</c> plus the tokenizer settings <c>train()</c> applies, as one immutable record.
/// </summary>
public sealed record LlavaDataOptions
{
    /// <summary><c>--image_folder</c>: image paths in the records are relative to it.</summary>
    public string ImageFolder { get; init; } = "";
    /// <summary><c>--image_aspect_ratio</c>.</summary>
    public ImageAspectRatio ImageAspectRatio { get; init; } = ImageAspectRatio.Square;
    /// <summary><c>data_args.is_multimodal</c> (true whenever a vision tower is configured). When false, image
    /// placeholders are not moved and text-only samples get no zero image.</summary>
    public bool IsMultimodal { get; init; } = true;
    /// <summary><c>--mm_use_im_start_end</c>: "&lt;image&gt;" becomes "&lt;im_start&gt;&lt;image&gt;&lt;im_end&gt;" (the tokenizer must know those tokens).</summary>
    public bool MmUseImStartEnd { get; init; }
    /// <summary><c>--model_max_length</c> (<c>tokenizer.model_max_length</c>).</summary>
    public int ModelMaxLength { get; init; } = 2048;
    /// <summary>The conversation template (<c>conversation_lib.default_conversation</c>, from <c>--version</c>):
    /// <see cref="ConversationTemplates.LlavaPlain"/> for stage 1, <see cref="ConversationTemplates.VicunaV1"/> (<c>v1</c>) for stage 2.</summary>
    public ConversationTemplate Template { get; init; } = ConversationTemplates.VicunaV1;
    /// <summary>
    /// LLaVA's <c>IS_TOKENIZER_GREATER_THAN_0_14</c> (tokenizers &gt;= 0.14; LLaVA pins 0.15.1, so true). With a
    /// non-legacy tokenizer, rounds after the first count one token less (<c>round_len -= 1; instruction_len -= 1</c>).
    /// </summary>
    public bool TokenizersAtLeast014 { get; init; } = true;
    /// <summary>Pad id for the collator and <c>total_len</c>; null = the tokenizer's unk id, as LLaVA's <c>train()</c>
    /// sets <c>pad_token = unk_token</c> for every version but v0.</summary>
    public int? PadTokenId { get; init; }
    /// <summary>What is verified about each image file at load time.</summary>
    public ImageCheck ImageCheck { get; init; } = ImageCheck.Exists;
    /// <summary>At most this many warning messages are kept in <see cref="DataReport.Warnings"/> (counts are always complete).</summary>
    public int MaxStoredWarnings { get; init; } = 1000;
}
