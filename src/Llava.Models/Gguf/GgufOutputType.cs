namespace Llava.Models.Gguf;

/// <summary>Element type of the exported weight matrices (vectors such as norms and biases always stay F32, as llama.cpp's converter does).</summary>
public enum GgufOutputType
{
    F32,
    F16,
    BF16,
}
