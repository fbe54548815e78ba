namespace Llava.Text;

/// <summary>
/// LLaVA's <c>conv_templates</c> registry (llava/conversation.py at commit c121f04) and model-name based
/// template selection.
/// </summary>
public static class ConversationTemplates
{
    const string HumanSystem =
        "A chat between a curious human and an artificial intelligence assistant. " +
        "The assistant gives helpful, detailed, and polite answers to the human's questions.";

    const string UserSystem =
        "A chat between a curious user and an artificial intelligence assistant. " +
        "The assistant gives helpful, detailed, and polite answers to the user's questions.";

    const string MmtagSystem =
        "A chat between a curious user and an artificial intelligence assistant. " +
        "The assistant is able to understand the visual content that the user provides, and assist the user with a variety of tasks using natural language." +
        "The visual content will be provided with the following format: <Image>visual content</Image>.";

    /// <summary><c>conv_vicuna_v0</c>: "###"-separated, with a two-message few-shot example (offset 2).</summary>
    public static ConversationTemplate VicunaV0 { get; } = new()
    {
        System = HumanSystem,
        Roles = ["Human", "Assistant"],
        Messages =
        [
            new("Human", "What are the key differences between renewable and non-renewable energy sources?"),
            new("Assistant",
                "Renewable energy sources are those that can be replenished naturally in a relatively " +
                "short amount of time, such as solar, wind, hydro, geothermal, and biomass. " +
                "Non-renewable energy sources, on the other hand, are finite and will eventually be " +
                "depleted, such as coal, oil, and natural gas. Here are some key differences between " +
                "renewable and non-renewable energy sources:\n" +
                "1. Availability: Renewable energy sources are virtually inexhaustible, while non-renewable " +
                "energy sources are finite and will eventually run out.\n" +
                "2. Environmental impact: Renewable energy sources have a much lower environmental impact " +
                "than non-renewable sources, which can lead to air and water pollution, greenhouse gas emissions, " +
                "and other negative effects.\n" +
                "3. Cost: Renewable energy sources can be more expensive to initially set up, but they typically " +
                "have lower operational costs than non-renewable sources.\n" +
                "4. Reliability: Renewable energy sources are often more reliable and can be used in more remote " +
                "locations than non-renewable sources.\n" +
                "5. Flexibility: Renewable energy sources are often more flexible and can be adapted to different " +
                "situations and needs, while non-renewable sources are more rigid and inflexible.\n" +
                "6. Sustainability: Renewable energy sources are more sustainable over the long term, while " +
                "non-renewable sources are not, and their depletion can lead to economic and social instability.\n"),
        ],
        Offset = 2,
        Style = SeparatorStyle.Single,
        Sep = "###",
    };

    /// <summary><c>conv_vicuna_v1</c>: the "curious user" prompt LLaVA-1.5 was fine-tuned and evaluated with.</summary>
    public static ConversationTemplate VicunaV1 { get; } = new()
    {
        System = UserSystem,
        Roles = ["USER", "ASSISTANT"],
        Version = "v1",
        Style = SeparatorStyle.Two,
        Sep = " ",
        Sep2 = "</s>",
    };

    /// <summary><c>conv_llama_2</c>: LLaMA-2-chat's default system prompt.</summary>
    public static ConversationTemplate Llama2 { get; } = new()
    {
        System = "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being safe.  " +
                 "Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, or illegal content. " +
                 "Please ensure that your responses are socially unbiased and positive in nature.\n\n" +
                 "If a question does not make any sense, or is not factually coherent, explain why instead of answering something not correct. " +
                 "If you don't know the answer to a question, please don't share false information.",
        Roles = ["USER", "ASSISTANT"],
        Version = "llama_v2",
        Style = SeparatorStyle.Llama2,
        Sep = "<s>",
        Sep2 = "</s>",
    };

    /// <summary><c>conv_llava_llama_2</c>.</summary>
    public static ConversationTemplate LlavaLlama2 { get; } = Llama2 with
    {
        System = "You are a helpful language and vision assistant. " +
                 "You are able to understand the visual content that the user provides, " +
                 "and assist the user with a variety of tasks using natural language.",
    };

    /// <summary><c>conv_mpt</c>: ChatML markup.</summary>
    public static ConversationTemplate Mpt { get; } = new()
    {
        System = "<|im_start|>system\nA conversation between a user and an LLM-based AI assistant. The assistant gives helpful and honest answers.",
        Roles = ["<|im_start|>user\n", "<|im_start|>assistant\n"],
        Version = "mpt",
        Style = SeparatorStyle.Mpt,
        Sep = "<|im_end|>",
    };

    /// <summary><c>conv_llava_plain</c>: no system prompt or roles (pre-training format); sep2 is unset.</summary>
    public static ConversationTemplate LlavaPlain { get; } = new()
    {
        System = "",
        Roles = ["", ""],
        Style = SeparatorStyle.Plain,
        Sep = "\n",
    };

    /// <summary><c>conv_llava_v0</c>: vicuna_v0 without the few-shot example.</summary>
    public static ConversationTemplate LlavaV0 { get; } = new()
    {
        System = HumanSystem,
        Roles = ["Human", "Assistant"],
        Style = SeparatorStyle.Single,
        Sep = "###",
    };

    /// <summary><c>conv_llava_v0_mmtag</c>.</summary>
    public static ConversationTemplate LlavaV0Mmtag { get; } = LlavaV0 with { System = MmtagSystem, Version = "v0_mmtag" };

    /// <summary><c>conv_llava_v1</c>: vicuna_v1's format with the "curious human" system prompt.</summary>
    public static ConversationTemplate LlavaV1 { get; } = VicunaV1 with { System = HumanSystem };

    /// <summary><c>conv_llava_v1_mmtag</c>.</summary>
    public static ConversationTemplate LlavaV1Mmtag { get; } = VicunaV1 with { System = MmtagSystem, Version = "v1_mmtag" };

    /// <summary><c>conv_mistral_instruct</c>: LLAMA_2 style with no system prompt and an empty sep.</summary>
    public static ConversationTemplate MistralInstruct { get; } = Llama2 with { System = "", Sep = "" };

    /// <summary><c>conv_chatml_direct</c> (LLaVA-1.6-34B).</summary>
    public static ConversationTemplate ChatmlDirect { get; } = Mpt with { System = "<|im_start|>system\nAnswer the questions." };

    static readonly (string Name, ConversationTemplate Template)[] registry =
    [
        ("default", VicunaV0),
        ("v0", VicunaV0),
        ("v1", VicunaV1),
        ("vicuna_v1", VicunaV1),
        ("llama_2", Llama2),
        ("mistral_instruct", MistralInstruct),
        ("chatml_direct", ChatmlDirect),
        ("mistral_direct", ChatmlDirect),
        ("plain", LlavaPlain),
        ("v0_plain", LlavaPlain),
        ("llava_v0", LlavaV0),
        ("v0_mmtag", LlavaV0Mmtag),
        ("llava_v1", LlavaV1),
        ("v1_mmtag", LlavaV1Mmtag),
        ("llava_llama_2", LlavaLlama2),
        ("mpt", Mpt),
    ];

    static readonly Dictionary<string, ConversationTemplate> byName =
        registry.ToDictionary(e => e.Name, e => e.Template, StringComparer.Ordinal);

    /// <summary>The registry keys, in LLaVA's order.</summary>
    public static IReadOnlyList<string> Names { get; } = registry.Select(e => e.Name).ToArray();

    /// <summary>The template registered as <paramref name="name"/> (LLaVA's <c>conv_templates[name]</c>).</summary>
    public static ConversationTemplate Get(string name) =>
        byName.TryGetValue(name, out var t) ? t
            : throw new KeyNotFoundException($"Unknown conversation template '{name}'. Known: {string.Join(", ", Names)}");

    public static bool TryGet(string name, out ConversationTemplate template) => byName.TryGetValue(name, out template!);

    /// <summary>
    /// Template key for a model name, as LLaVA's <c>llava/serve/cli.py</c> and <c>llava/eval/run_llava.py</c>
    /// infer it: "llama-2" → llava_llama_2, "mistral" → mistral_instruct, "v1.6-34b" → chatml_direct,
    /// "v1" → llava_v1, "mpt" → mpt, otherwise llava_v0 (case-insensitive substring tests, in that order).
    /// </summary>
    public static string AutoSelectLikeLlavaCli(string modelName)
    {
        var n = modelName.ToLowerInvariant();
        if (n.Contains("llama-2")) return "llava_llama_2";
        if (n.Contains("mistral")) return "mistral_instruct";
        if (n.Contains("v1.6-34b")) return "chatml_direct";
        if (n.Contains("v1")) return "llava_v1";
        if (n.Contains("mpt")) return "mpt";
        return "llava_v0";
    }

    /// <summary>
    /// Our template choice for a model name. It follows <see cref="AutoSelectLikeLlavaCli"/> except that
    /// LLaVA-1.5-style names (containing "v1" or "1.5") get <c>vicuna_v1</c> instead of <c>llava_v1</c>:
    /// LLaVA-1.5 was fine-tuned with <c>--version v1</c> (= conv_vicuna_v1, "a curious user ... the user's
    /// questions") and all of its published evaluation scripts pass <c>--conv-mode vicuna_v1</c>. The CLI's
    /// llava_v1 differs only in saying "human" instead of "user" in the system prompt, which is a prompt the
    /// model never saw in training.
    /// </summary>
    public static string AutoSelect(string modelName)
    {
        var llava = AutoSelectLikeLlavaCli(modelName);
        if (llava == "llava_v1") return "vicuna_v1";
        if (llava == "llava_v0" && modelName.Contains("1.5", StringComparison.Ordinal)) return "vicuna_v1";
        return llava;
    }

    /// <summary>LLaVA's <c>get_model_name_from_path</c>: the last path part, or "parent_checkpoint-N".</summary>
    public static string ModelNameFromPath(string modelPath)
    {
        var parts = modelPath.Trim('/').Split('/');
        return parts[^1].StartsWith("checkpoint-", StringComparison.Ordinal) && parts.Length >= 2
            ? parts[^2] + "_" + parts[^1]
            : parts[^1];
    }
}
