using System.Buffers.Binary;
using System.Text;

namespace Llava.Formats.Tests.Torch;

/// <summary>Writes pickle opcodes byte by byte, to build synthetic (and deliberately broken) checkpoints.</summary>
internal sealed class PickleBuilder
{
    readonly List<byte> bytes = new();

    public byte[] ToArray() => bytes.ToArray();
    public int Length => bytes.Count;

    public PickleBuilder Op(byte op) { bytes.Add(op); return this; }
    public PickleBuilder Op(char op) => Op((byte)op);
    public PickleBuilder Raw(params byte[] b) { bytes.AddRange(b); return this; }

    public PickleBuilder Proto(byte v) => Op(0x80).Raw(v);
    public PickleBuilder Mark() => Op('(');
    public PickleBuilder Stop() => Op('.');
    public PickleBuilder EmptyDict() => Op('}');
    public PickleBuilder EmptyTuple() => Op(')');
    public PickleBuilder Tuple() => Op('t');
    public PickleBuilder SetItem() => Op('s');
    public PickleBuilder SetItems() => Op('u');
    public PickleBuilder Reduce() => Op('R');
    public PickleBuilder BinPersId() => Op('Q');
    public PickleBuilder False() => Op(0x89);
    public PickleBuilder None() => Op('N');

    public PickleBuilder Str(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        Op('X');
        var len = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(len, b.Length);
        return Raw(len).Raw(b);
    }

    public PickleBuilder ShortStr(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        return Op(0x8c).Raw((byte)b.Length).Raw(b);
    }

    public PickleBuilder Int(long v)
    {
        if (v is >= 0 and < 256) return Op('K').Raw((byte)v);
        if (v is >= int.MinValue and <= int.MaxValue)
        {
            var b = new byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(b, (int)v);
            return Op('J').Raw(b);
        }
        var l = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(l, v);
        return Op(0x8a).Raw(8).Raw(l);
    }

    public PickleBuilder Global(string module, string name) =>
        Op('c').Raw(Encoding.ASCII.GetBytes(module + "\n" + name + "\n"));

    public PickleBuilder IntTuple(params long[] values)
    {
        Mark();
        foreach (var v in values) Int(v);
        return Tuple();
    }

    /// <summary>_rebuild_tensor_v2(pid, offset, size, stride, False, OrderedDict()) as torch.save writes it.</summary>
    public PickleBuilder Tensor(string storageType, string key, long numel, long offset, long[] size, long[] stride, bool legacy = false) =>
        TensorWithPid(p =>
        {
            p.Mark().Str("storage").Global("torch", storageType).Str(key).Str("cpu").Int(numel);
            if (legacy) p.None();
            p.Tuple();
        }, offset, size, stride);

    /// <summary>A tensor rebuild whose persistent id tuple is written by <paramref name="pid"/>.</summary>
    public PickleBuilder TensorWithPid(Action<PickleBuilder> pid, long offset, long[] size, long[] stride)
    {
        Global("torch._utils", "_rebuild_tensor_v2");
        Mark();
        pid(this);
        BinPersId();
        Int(offset).IntTuple(size).IntTuple(stride).False();
        Global("collections", "OrderedDict").EmptyTuple().Reduce();
        return Tuple().Reduce();
    }

    /// <summary>A protocol-2 state dict pickle: {name: tensor} built by the given writers.</summary>
    public static byte[] StateDict(params (string Name, Action<PickleBuilder> Value)[] items)
    {
        var p = new PickleBuilder().Proto(2).EmptyDict().Mark();
        foreach (var (name, value) in items)
        {
            p.Str(name);
            value(p);
        }
        return p.SetItems().Stop().ToArray();
    }
}
