namespace Llava.Generation;

/// <summary>Projected features of one image: (Rows, hidden) floats that replace its placeholder. Key identifies the content.</summary>
public sealed record ImageFeatures(float[] Features, int Rows, long Key);
