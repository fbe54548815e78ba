using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace Llava.Formats.Torch;

/// <summary>
/// A pickle virtual machine restricted to what torch.save writes. It only builds plain values (None, bools, ints,
/// floats, strings, bytes, tuples, lists, dicts), storages (via the persistent-id callback) and tensor descriptions.
/// Globals must pass <see cref="TorchGlobals"/>; REDUCE interprets the few allowed callables itself; nothing is ever
/// imported or executed. Every read is bounds-checked, so a truncated or corrupt pickle fails with a clear message.
/// </summary>
internal sealed unsafe class RestrictedUnpickler
{
    /// <summary>GLOBAL names longer than this are not module paths; stops a scan for a newline through a huge file.</summary>
    const int MaxGlobalLine = 1024;

    static readonly UTF8Encoding strictUtf8 = new(false, true);

    readonly string source;
    readonly string what;
    readonly byte* data;
    readonly long start;
    readonly long end;
    readonly Func<object?[], TorchStorage>? persistentLoad;
    readonly List<object?> stack = new();
    readonly List<int> marks = new();
    readonly Dictionary<long, object?> memo = new();
    long pos;
    long opStart;

    /// <param name="source">the file, for messages</param>
    /// <param name="what">which pickle this is ("data.pkl", "legacy object pickle"), for messages</param>
    /// <param name="data">base pointer; the pickle occupies [start, end)</param>
    /// <param name="persistentLoad">turns a persistent id tuple into a storage; null when persistent ids are not allowed</param>
    public RestrictedUnpickler(string source, string what, byte* data, long start, long end, Func<object?[], TorchStorage>? persistentLoad)
    {
        this.source = source;
        this.what = what;
        this.data = data;
        this.start = start;
        this.end = end;
        this.persistentLoad = persistentLoad;
        pos = start;
    }

    /// <summary>Position just after the STOP opcode once <see cref="Load"/> has returned.</summary>
    public long Position => pos;

    Exception Fail(string message) =>
        new ModelFormatException($"{source}: {what}: {message} (pickle opcode at byte {opStart - start})");

    /// <summary>Runs the pickle to its STOP opcode and returns the object on top of the stack.</summary>
    public object? Load()
    {
        while (true)
        {
            opStart = pos;
            byte op = ReadByte();
            switch (op)
            {
                // Framing and protocol
                case 0x80: // PROTO
                    if (ReadByte() > 5) throw Fail("pickle protocol newer than 5");
                    break;
                case 0x95: // FRAME: a length hint only
                    Read(8);
                    break;
                case (byte)'.': // STOP
                    if (marks.Count != 0) throw Fail("STOP inside an unclosed MARK");
                    if (stack.Count != 1) throw Fail($"STOP with {stack.Count} values on the stack (expected 1)");
                    return stack[0];

                // Stack manipulation
                case (byte)'(': marks.Add(stack.Count); break; // MARK
                case (byte)'0': Pop(); break; // POP
                case (byte)'1': PopMark(); break; // POP_MARK
                case (byte)'2': Push(Peek()); break; // DUP

                // Constants and numbers
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break; // NEWTRUE
                case 0x89: Push(false); break; // NEWFALSE
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Read(4))); break; // BININT
                case (byte)'K': Push((long)ReadByte()); break; // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Read(2))); break; // BININT2
                case 0x8a: Push(ReadLong(ReadByte())); break; // LONG1
                case 0x8b: Push(ReadLong(ReadLength(4))); break; // LONG4
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Read(8))); break; // BINFLOAT

                // Strings and bytes
                case (byte)'X': Push(ReadUtf8(ReadLength(4))); break; // BINUNICODE
                case 0x8c: Push(ReadUtf8(ReadByte())); break; // SHORT_BINUNICODE
                case 0x8d: Push(ReadUtf8(ReadLength(8))); break; // BINUNICODE8
                case (byte)'T': Push(Encoding.Latin1.GetString(Read(ReadLength(4)))); break; // BINSTRING (Python 2 str)
                case (byte)'U': Push(Encoding.Latin1.GetString(Read(ReadByte()))); break; // SHORT_BINSTRING
                case (byte)'B': Push(Read(ReadLength(4)).ToArray()); break; // BINBYTES
                case (byte)'C': Push(Read(ReadByte()).ToArray()); break; // SHORT_BINBYTES
                case 0x8e: Push(Read(ReadLength(8)).ToArray()); break; // BINBYTES8
                case 0x96: Push(Read(ReadLength(8)).ToArray()); break; // BYTEARRAY8

                // Containers
                case (byte)')': Push(Array.Empty<object?>()); break; // EMPTY_TUPLE
                case (byte)'t': Push(PopMark().ToArray()); break; // TUPLE
                case 0x85: { var a = Pop(); Push(new[] { a }); break; } // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; } // TUPLE2
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; } // TUPLE3
                case (byte)']': Push(new List<object?>()); break; // EMPTY_LIST
                case (byte)'l': Push(PopMark()); break; // LIST
                case (byte)'a': { var v = Pop(); PeekList().Add(v); break; } // APPEND
                case (byte)'e': { var items = PopMark(); PeekList().AddRange(items); break; } // APPENDS
                case (byte)'}': Push(new PickleDict()); break; // EMPTY_DICT
                case (byte)'d': { var items = PopMark(); var d = new PickleDict(); SetItems(d, items); Push(d); break; } // DICT
                case (byte)'s': { var v = Pop(); var k = Pop(); SetItem(PeekDict(), k, v); break; } // SETITEM
                case (byte)'u': { var items = PopMark(); SetItems(PeekDict(), items); break; } // SETITEMS

                // Memo
                case (byte)'q': memo[ReadByte()] = Peek(); break; // BINPUT
                case (byte)'r': memo[BinaryPrimitives.ReadUInt32LittleEndian(Read(4))] = Peek(); break; // LONG_BINPUT
                case 0x94: memo[memo.Count] = Peek(); break; // MEMOIZE
                case (byte)'h': Push(MemoGet(ReadByte())); break; // BINGET
                case (byte)'j': Push(MemoGet(BinaryPrimitives.ReadUInt32LittleEndian(Read(4)))); break; // LONG_BINGET

                // Globals, calls and persistent ids: the only places a pickle could reach code, all restricted.
                case (byte)'c': // GLOBAL "module\nname\n"
                {
                    string module = ReadLine();
                    string name = ReadLine();
                    Push(ResolveGlobal(module, name));
                    break;
                }
                case 0x93: // STACK_GLOBAL
                {
                    var name = Pop();
                    var module = Pop();
                    if (module is not string m || name is not string n)
                        throw Fail($"STACK_GLOBAL expects two strings, got {PickleValue.Describe(module)} and {PickleValue.Describe(name)}");
                    Push(ResolveGlobal(m, n));
                    break;
                }
                case (byte)'R': // REDUCE
                {
                    var args = Pop();
                    var callable = Pop();
                    Push(Reduce(callable, args));
                    break;
                }
                case (byte)'b': // BUILD
                {
                    var state = Pop();
                    var target = Peek();
                    // OrderedDict state is the state dict's _metadata attribute (module versions): irrelevant for weights.
                    if (target is not PickleDict)
                        throw Fail($"BUILD (setting object state) on {PickleValue.Describe(target)} is not supported");
                    _ = state;
                    break;
                }
                case (byte)'Q': // BINPERSID
                {
                    var pid = Pop();
                    if (persistentLoad == null) throw Fail("persistent id where none is allowed");
                    if (pid is not object?[] tuple) throw Fail($"persistent id must be a tuple, got {PickleValue.Describe(pid)}");
                    Push(persistentLoad(tuple));
                    break;
                }
                case 0x81: case 0x92: case (byte)'i': case (byte)'o': // NEWOBJ, NEWOBJ_EX, INST, OBJ
                    throw Fail($"refusing to load: the pickle constructs an object (opcode 0x{op:x2}); only tensor rebuilds are allowed");
                case 0x82: case 0x83: case 0x84: // EXT1, EXT2, EXT4
                    throw Fail("refusing to load: the pickle uses the extension registry (EXT opcodes); only tensor rebuilds are allowed");
                case (byte)'P': // PERSID (text form, never written by torch)
                    throw Fail("text persistent ids (PERSID) are not supported");
                default:
                    throw Fail($"unsupported pickle opcode 0x{op:x2}");
            }
        }
    }

    // ---- reading ----

    ReadOnlySpan<byte> Read(long count)
    {
        if (count < 0 || count > end - pos)
            throw Fail($"pickle data is truncated: needs {count} more bytes at byte {pos - start} but it ends at byte {end - start}");
        var span = new ReadOnlySpan<byte>(data + pos, checked((int)count));
        pos += count;
        return span;
    }

    byte ReadByte() => Read(1)[0];

    /// <summary>A 4- or 8-byte little-endian length; must fit in what remains, which Read then checks.</summary>
    long ReadLength(int width)
    {
        var b = Read(width);
        ulong n = width == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(b) : BinaryPrimitives.ReadUInt64LittleEndian(b);
        if (n > int.MaxValue) throw Fail($"length {n} is larger than any pickle value supported here");
        return (long)n;
    }

    /// <summary>LONG1/LONG4: little-endian two's complement of the given width; long when it fits.</summary>
    object ReadLong(long width)
    {
        // No tensor metadata needs more than 64 bits; the legacy magic number is the largest integer torch writes (10 bytes).
        if (width > 64) throw Fail($"integer of {width} bytes is larger than anything a checkpoint contains");
        var bytes = Read(width);
        if (bytes.Length == 0) return 0L;
        var value = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        return value >= long.MinValue && value <= long.MaxValue ? (long)value : value;
    }

    string ReadUtf8(long length)
    {
        var bytes = Read(length);
        try { return strictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { throw Fail("string is not valid UTF-8"); }
    }

    string ReadLine()
    {
        long limit = Math.Min(end, pos + MaxGlobalLine);
        for (long p = pos; p < limit; p++)
        {
            if (data[p] != (byte)'\n') continue;
            var bytes = Read(p - pos);
            pos++; // the newline
            foreach (byte c in bytes)
                if (c < 0x20 || c > 0x7e) throw Fail("GLOBAL name contains non-printable characters");
            return Encoding.ASCII.GetString(bytes);
        }
        throw Fail(limit == end ? "pickle data is truncated inside a GLOBAL name" : "GLOBAL name is too long");
    }

    // ---- stack ----

    void Push(object? v) => stack.Add(v);

    object? Pop()
    {
        int floor = marks.Count > 0 ? marks[^1] : 0;
        if (stack.Count <= floor) throw Fail("stack underflow");
        var v = stack[^1];
        stack.RemoveAt(stack.Count - 1);
        return v;
    }

    object? Peek()
    {
        int floor = marks.Count > 0 ? marks[^1] : 0;
        if (stack.Count <= floor) throw Fail("stack underflow");
        return stack[^1];
    }

    /// <summary>Removes and returns everything above the most recent MARK.</summary>
    List<object?> PopMark()
    {
        if (marks.Count == 0) throw Fail("no MARK on the stack");
        int m = marks[^1];
        marks.RemoveAt(marks.Count - 1);
        var items = stack.GetRange(m, stack.Count - m);
        stack.RemoveRange(m, stack.Count - m);
        return items;
    }

    List<object?> PeekList() =>
        Peek() as List<object?> ?? throw Fail($"APPEND to {PickleValue.Describe(Peek())}, not a list");

    PickleDict PeekDict() =>
        Peek() as PickleDict ?? throw Fail($"SETITEM on {PickleValue.Describe(Peek())}, not a dict");

    void SetItem(PickleDict d, object? key, object? value)
    {
        if (!d.TrySet(key, value)) throw Fail($"dict key {PickleValue.Describe(key)} is not supported (only strings and integers)");
    }

    void SetItems(PickleDict d, List<object?> items)
    {
        if (items.Count % 2 != 0) throw Fail("SETITEMS with an odd number of items");
        for (int i = 0; i < items.Count; i += 2) SetItem(d, items[i], items[i + 1]);
    }

    object? MemoGet(long index) =>
        memo.TryGetValue(index, out var v) ? v : throw Fail($"memo entry {index} is read before it is written");

    // ---- globals and calls ----

    PickleGlobal ResolveGlobal(string module, string name) =>
        TorchGlobals.Resolve(module, name, out var why) ?? throw Fail(why);

    object? Reduce(object? callable, object? argsObj)
    {
        if (callable is not PickleGlobal g)
            throw Fail($"REDUCE calls {PickleValue.Describe(callable)}, which is not an allowed function");
        if (argsObj is not object?[] args)
            throw Fail($"REDUCE arguments for '{g.FullName}' must be a tuple, got {PickleValue.Describe(argsObj)}");
        switch (g.Kind)
        {
            case PickleGlobalKind.OrderedDict:
                if (args.Length != 0) throw Fail("collections.OrderedDict is only supported with no arguments");
                return new PickleDict();
            case PickleGlobalKind.RebuildTensorV2:
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]): the last ones do not affect the values.
                if (args.Length is < 6 or > 7) throw Fail($"_rebuild_tensor_v2 takes 6 or 7 arguments, got {args.Length}");
                return TorchTensorRef.Create(args[0], args[1], args[2], args[3], Fail);
            case PickleGlobalKind.RebuildTensor:
                if (args.Length != 4) throw Fail($"_rebuild_tensor takes 4 arguments, got {args.Length}");
                return TorchTensorRef.Create(args[0], args[1], args[2], args[3], Fail);
            case PickleGlobalKind.RebuildParameter:
            case PickleGlobalKind.RebuildParameterWithState:
                if (args.Length is < 3 or > 4 || args[0] is not TorchTensorRef t)
                    throw Fail($"'{g.FullName}' expects (tensor, requires_grad, hooks[, state])");
                return t;
            default:
                throw Fail($"'{g.FullName}' cannot be called");
        }
    }
}
