namespace Llava.Text;

/// <summary>How a conversation template joins its turns (LLaVA's <c>SeparatorStyle</c>).</summary>
public enum SeparatorStyle
{
    /// <summary><c>system sep role: msg sep ... role:</c></summary>
    Single,
    /// <summary>Like <see cref="Single"/> but alternating <c>sep</c> / <c>sep2</c> after user / assistant turns.</summary>
    Two,
    /// <summary>ChatML-like: <c>system sep role msg sep ... role</c> (roles carry their own markup).</summary>
    Mpt,
    /// <summary>Messages only, each followed by <c>sep</c> / <c>sep2</c>.</summary>
    Plain,
    /// <summary><c>[INST] &lt;&lt;SYS&gt;&gt;...&lt;&lt;/SYS&gt;&gt; msg [/INST] answer sep2</c>.</summary>
    Llama2,
}
