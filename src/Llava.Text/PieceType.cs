namespace Llava.Text;

/// <summary>SentencePiece piece types (ModelProto.SentencePiece.Type).</summary>
public enum PieceType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Byte = 6,
    Unused = 5,
}
