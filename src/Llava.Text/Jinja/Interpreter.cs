using System.Globalization;
using System.Text;

namespace Llava.Text.Jinja;

/// <summary>Evaluates a parsed template. Everything it can do is listed here: no reflection, no I/O.</summary>
internal sealed class Interpreter
{
    enum Flow { Normal, Break, Continue }

    readonly SourceMap map;
    readonly JinjaLimits limits;
    readonly List<Dictionary<string, object?>> scopes = [];
    StringBuilder output = new();
    long steps;
    long allocated;

    public Interpreter(SourceMap map, JinjaLimits limits, Dictionary<string, object?> globals)
    {
        this.map = map;
        this.limits = limits;
        scopes.Add(globals);
    }

    public string Run(List<Node> body)
    {
        Exec(body);
        return output.ToString();
    }

    // ---------------- budget ----------------

    void Step(int offset)
    {
        if (++steps > limits.MaxSteps)
            throw map.Error($"template exceeded the limit of {limits.MaxSteps} evaluation steps", offset);
    }

    void Charge(long units, int offset)
    {
        allocated += units;
        if (allocated > limits.MaxAllocation)
            throw map.Error($"template allocated more than {limits.MaxAllocation} characters/items", offset);
    }

    string NewString(string s, int offset)
    {
        if (s.Length > limits.MaxOutputLength)
            throw map.Error($"string longer than {limits.MaxOutputLength} characters", offset);
        Charge(s.Length, offset);
        return s;
    }

    List<object?> NewList(List<object?> l, int offset)
    {
        if (l.Count > limits.MaxCollectionSize)
            throw map.Error($"list longer than {limits.MaxCollectionSize} items", offset);
        Charge(l.Count, offset);
        return l;
    }

    void Write(string s, int offset)
    {
        output.Append(s);
        if (output.Length > limits.MaxOutputLength)
            throw map.Error($"template output exceeded {limits.MaxOutputLength} characters", offset);
    }

    ChatTemplateException Fail(string message, int offset) => map.Error(message, offset);

    // ---------------- statements ----------------

    Flow Exec(List<Node> nodes)
    {
        foreach (var node in nodes)
        {
            Step(node.Offset);
            Flow f;
            try { f = ExecNode(node); }
            catch (ChatTemplateException ex) when (ex.Line == 0) { throw Located(ex, node.Offset); }
            if (f != Flow.Normal) return f;
        }
        return Flow.Normal;
    }

    ChatTemplateException Located(ChatTemplateException ex, int offset)
    {
        var (line, col) = map.Locate(offset);
        return new ChatTemplateException(ex.Message, line, col, ex.RaisedByTemplate, ex);
    }

    Flow ExecNode(Node node)
    {
        switch (node)
        {
            case TextNode t:
                Write(t.Text, t.Offset);
                return Flow.Normal;
            case OutputNode o:
                Write(Values.Str(Eval(o.Value)), o.Offset);
                return Flow.Normal;
            case IfNode i:
                foreach (var (cond, body) in i.Branches)
                    if (Values.Truthy(Eval(cond))) return Exec(body);
                return i.Else is null ? Flow.Normal : Exec(i.Else);
            case ForNode f:
                return ExecFor(f);
            case SetNode s:
                ExecSet(s);
                return Flow.Normal;
            case SetBlockNode sb:
            {
                var saved = output;
                output = new StringBuilder();
                try { Exec(sb.Body); }
                finally { (output, saved) = (saved, output); }
                scopes[^1][sb.Target] = NewString(saved.ToString(), sb.Offset);
                return Flow.Normal;
            }
            case GenerationNode g:
                return Exec(g.Body);
            case BreakNode: return Flow.Break;
            case ContinueNode: return Flow.Continue;
            default:
                throw Fail($"unsupported node {node.GetType().Name}", node.Offset);
        }
    }

    Flow ExecFor(ForNode f)
    {
        var source = Iterate(Eval(f.Iterable), f.Iterable.Offset);
        var scope = new Dictionary<string, object?>(StringComparer.Ordinal);
        scopes.Add(scope);
        try
        {
            List<object?> items;
            if (f.Filter is null) items = source;
            else
            {
                items = [];
                foreach (var item in source)
                {
                    Step(f.Offset);
                    Bind(f, scope, item);
                    if (Values.Truthy(Eval(f.Filter))) items.Add(item);
                }
            }
            var loop = new LoopInfo { Items = items };
            for (int i = 0; i < items.Count; i++)
            {
                Step(f.Offset);
                loop.Index0 = i;
                Bind(f, scope, items[i]);
                scope["loop"] = loop;
                if (Exec(f.Body) == Flow.Break) break;
            }
            if (items.Count == 0 && f.Else is not null) return Exec(f.Else);
        }
        finally { scopes.RemoveAt(scopes.Count - 1); }
        return Flow.Normal;
    }

    void Bind(ForNode f, Dictionary<string, object?> scope, object? item)
    {
        if (f.Targets.Count == 1) { scope[f.Targets[0]] = item; return; }
        var parts = item as List<object?> ?? throw Fail($"cannot unpack {Values.TypeName(item)} into {f.Targets.Count} loop variables", f.Offset);
        if (parts.Count != f.Targets.Count) throw Fail($"cannot unpack {parts.Count} values into {f.Targets.Count} loop variables", f.Offset);
        for (int i = 0; i < parts.Count; i++) scope[f.Targets[i]] = parts[i];
    }

    void ExecSet(SetNode s)
    {
        var value = Eval(s.Value);
        if (s.Attribute is not null)
        {
            if (Lookup(s.Targets[0]) is not Namespace ns)
                throw Fail($"cannot set attribute '{s.Attribute}' on '{s.Targets[0]}': only namespace() objects can be modified", s.Offset);
            ns.Attributes[s.Attribute] = value;
            return;
        }
        if (s.Targets.Count == 1) { scopes[^1][s.Targets[0]] = value; return; }
        var parts = value as List<object?> ?? throw Fail($"cannot unpack {Values.TypeName(value)}", s.Offset);
        if (parts.Count != s.Targets.Count) throw Fail($"cannot unpack {parts.Count} values into {s.Targets.Count} names", s.Offset);
        for (int i = 0; i < parts.Count; i++) scopes[^1][s.Targets[i]] = parts[i];
    }

    object? Lookup(string name)
    {
        for (int i = scopes.Count - 1; i >= 0; i--)
            if (scopes[i].TryGetValue(name, out var v)) return v;
        return new Undefined($"'{name}'");
    }

    // ---------------- expressions ----------------

    object? Eval(Expr e)
    {
        Step(e.Offset);
        switch (e)
        {
            case LiteralExpr l: return l.Value;
            case NameExpr n: return Lookup(n.Name);
            case ListExpr l:
            {
                var list = new List<object?>(l.Items.Count);
                foreach (var item in l.Items) list.Add(Eval(item));
                return NewList(list, e.Offset);
            }
            case DictExpr d:
            {
                var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, v) in d.Pairs)
                {
                    var key = Eval(k) as string ?? throw Fail("dictionary keys must be strings", k.Offset);
                    dict[key] = Eval(v);
                }
                Charge(dict.Count, e.Offset);
                return dict;
            }
            case AttrExpr a: return GetAttr(Eval(a.Target), a.Name, a.Offset);
            case ItemExpr i: return GetItem(Eval(i.Target), Eval(i.Index), i.Offset);
            case SliceExpr s: return Slice(s);
            case CallExpr c: return Call(c);
            case FilterExpr f: return Filter(f);
            case TestExpr t:
            {
                var args = t.Args.Select(Eval).ToList();
                bool r = Test(t.Name, Eval(t.Target), args, t.Offset);
                return t.Negated ? !r : r;
            }
            case UnaryExpr u:
            {
                var v = Eval(u.Operand);
                if (u.Op == "not") return !Values.Truthy(v);
                if (v is long or bool && u.Op == "-") return Checked(() => -Values.ToLong(v), u.Offset);
                if (v is double d) return u.Op == "-" ? -d : d;
                if (v is long or bool) return Values.ToLong(v);
                throw Fail($"bad operand type for unary {u.Op}: '{Values.TypeName(v)}'", u.Offset);
            }
            case BinaryExpr b:
                if (b.Op == "and") { var l = Eval(b.Left); return Values.Truthy(l) ? Eval(b.Right) : l; }
                if (b.Op == "or") { var l = Eval(b.Left); return Values.Truthy(l) ? l : Eval(b.Right); }
                return Binary(b.Op, Eval(b.Left), Eval(b.Right), b.Offset);
            case CompareExpr c:
            {
                var left = Eval(c.First);
                foreach (var (op, operand) in c.Rest)
                {
                    var right = Eval(operand);
                    if (!Compare(op, left, right, operand.Offset)) return false;
                    left = right;
                }
                return true;
            }
            case CondExpr c:
                return Values.Truthy(Eval(c.Condition)) ? Eval(c.Then) : c.Else is null ? new Undefined("inline if without else") : Eval(c.Else);
            default:
                throw Fail($"unsupported expression {e.GetType().Name}", e.Offset);
        }
    }

    object? Checked(Func<long> f, int offset)
    {
        try { return f(); }
        catch (OverflowException) { throw Fail("integer overflow", offset); }
    }

    object? Binary(string op, object? a, object? b, int at)
    {
        if (op == "~") return NewString(Values.Str(a) + Values.Str(b), at);
        if (a is Undefined ua && op != "~") throw Fail($"{ua.Description} is undefined", at);
        if (b is Undefined ub) throw Fail($"{ub.Description} is undefined", at);
        switch (op)
        {
            case "+":
                if (a is string sa && b is string sb) return NewString(string.Concat(sa, sb), at);
                if (a is List<object?> la && b is List<object?> lb) return NewList([.. la, .. lb], at);
                break;
            case "*":
                if (a is string s1 && b is long n1) return Repeat(s1, n1, at);
                if (a is long n2 && b is string s2) return Repeat(s2, n2, at);
                if (a is List<object?> l1 && b is long m1) return RepeatList(l1, m1, at);
                if (a is long m2 && b is List<object?> l2) return RepeatList(l2, m2, at);
                break;
        }
        if (!Values.IsNumber(a) || !Values.IsNumber(b))
            throw Fail($"unsupported operand types for {op}: '{Values.TypeName(a)}' and '{Values.TypeName(b)}'", at);
        bool isFloat = a is double || b is double;
        try
        {
            switch (op)
            {
                case "+": return isFloat ? (object)(Values.ToDouble(a) + Values.ToDouble(b)) : checked(Values.ToLong(a) + Values.ToLong(b));
                case "-": return isFloat ? (object)(Values.ToDouble(a) - Values.ToDouble(b)) : checked(Values.ToLong(a) - Values.ToLong(b));
                case "*": return isFloat ? (object)(Values.ToDouble(a) * Values.ToDouble(b)) : checked(Values.ToLong(a) * Values.ToLong(b));
                case "/":
                    if (Values.ToDouble(b) == 0) throw Fail("division by zero", at);
                    return Values.ToDouble(a) / Values.ToDouble(b);
                case "//":
                    if (Values.ToDouble(b) == 0) throw Fail("division by zero", at);
                    if (isFloat) return Math.Floor(Values.ToDouble(a) / Values.ToDouble(b));
                    return (object)FloorDiv(Values.ToLong(a), Values.ToLong(b));
                case "%":
                    if (Values.ToDouble(b) == 0) throw Fail("modulo by zero", at);
                    if (isFloat)
                    {
                        double x = Values.ToDouble(a), y = Values.ToDouble(b), r = x % y;
                        return r != 0 && (r < 0) != (y < 0) ? r + y : r;
                    }
                    long p = Values.ToLong(a), q = Values.ToLong(b);
                    return checked(p - FloorDiv(p, q) * q);
                case "**":
                    if (isFloat || Values.ToLong(b) < 0) return Math.Pow(Values.ToDouble(a), Values.ToDouble(b));
                    long bas = Values.ToLong(a), exp = Values.ToLong(b), result = 1;
                    for (long i = 0; i < exp; i++)
                    {
                        result = checked(result * bas);
                        if (result == 0 || result == 1 && bas == 1) break;
                        if (i > 64 && (bas == -1)) { result = exp % 2 == 0 ? 1 : -1; break; }
                    }
                    return result;
            }
        }
        catch (OverflowException) { throw Fail("integer overflow", at); }
        throw Fail($"unsupported operator '{op}'", at);
    }

    static long FloorDiv(long a, long b)
    {
        long q = checked(a / b);
        if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
        return q;
    }

    string Repeat(string s, long n, int at)
    {
        if (n <= 0 || s.Length == 0) return "";
        if (n > limits.MaxOutputLength || s.Length * n > limits.MaxOutputLength)
            throw Fail($"string longer than {limits.MaxOutputLength} characters", at);
        return NewString(string.Concat(Enumerable.Repeat(s, (int)n)), at);
    }

    List<object?> RepeatList(List<object?> l, long n, int at)
    {
        if (n <= 0 || l.Count == 0) return [];
        if (n > limits.MaxCollectionSize || l.Count * n > limits.MaxCollectionSize)
            throw Fail($"list longer than {limits.MaxCollectionSize} items", at);
        var r = new List<object?>();
        for (long i = 0; i < n; i++) r.AddRange(l);
        return NewList(r, at);
    }

    bool Compare(string op, object? a, object? b, int at)
    {
        switch (op)
        {
            case "==": return Values.Equal(a, b);
            case "!=": return !Values.Equal(a, b);
            case "in": return Contains(b, a, at);
            case "not in": return !Contains(b, a, at);
        }
        int c;
        if (Values.IsNumber(a) && Values.IsNumber(b)) c = Values.ToDouble(a).CompareTo(Values.ToDouble(b));
        else if (a is string sa && b is string sb) c = string.CompareOrdinal(sa, sb);
        else throw Fail($"'{op}' not supported between '{Values.TypeName(a)}' and '{Values.TypeName(b)}'", at);
        return op switch { "<" => c < 0, ">" => c > 0, "<=" => c <= 0, _ => c >= 0 };
    }

    bool Contains(object? container, object? item, int at)
    {
        switch (container)
        {
            case string s:
                if (item is not string sub) throw Fail($"'in <string>' requires string as left operand, not {Values.TypeName(item)}", at);
                return s.Contains(sub, StringComparison.Ordinal);
            case List<object?> l:
                foreach (var x in l) { Step(at); if (Values.Equal(x, item)) return true; }
                return false;
            case Dictionary<string, object?> d: return item is string k && d.ContainsKey(k);
            case Namespace ns: return item is string k2 && ns.Attributes.ContainsKey(k2);
            case Undefined: return false;
            default: throw Fail($"argument of type '{Values.TypeName(container)}' is not iterable", at);
        }
    }

    object? GetAttr(object? target, string name, int at)
    {
        switch (target)
        {
            case Undefined u: throw Fail($"{u.Description} is undefined (accessing '.{name}')", at);
            case Dictionary<string, object?> d: return d.TryGetValue(name, out var v) ? v : new Undefined($"attribute '{name}'");
            case Namespace ns: return ns.Attributes.TryGetValue(name, out var w) ? w : new Undefined($"attribute '{name}'");
            case LoopInfo loop: return loop.Get(name);
            default: return new Undefined($"attribute '{name}' of {Values.TypeName(target)}");
        }
    }

    object? GetItem(object? target, object? index, int at)
    {
        switch (target)
        {
            case Undefined u: throw Fail($"{u.Description} is undefined (indexing it)", at);
            case Dictionary<string, object?> d:
                return index is string k && d.TryGetValue(k, out var v) ? v : new Undefined($"key {Values.Repr(index)}");
            case List<object?> l when index is long or bool:
            {
                long i = Values.ToLong(index);
                if (i < 0) i += l.Count;
                return i >= 0 && i < l.Count ? l[(int)i] : new Undefined($"index {index}");
            }
            case string s when index is long or bool:
            {
                long i = Values.ToLong(index);
                if (i < 0) i += s.Length;
                return i >= 0 && i < s.Length ? s[(int)i].ToString() : new Undefined($"index {index}");
            }
            case Namespace or LoopInfo when index is string name:
                return GetAttr(target, name, at);
            default:
                return new Undefined($"item {Values.Repr(index)} of {Values.TypeName(target)}");
        }
    }

    object? Slice(SliceExpr s)
    {
        var target = Eval(s.Target);
        long? Opt(Expr? e)
        {
            if (e is null) return null;
            var v = Eval(e);
            if (v is null) return null;
            if (v is long or bool) return Values.ToLong(v);
            throw Fail("slice indices must be integers or none", e.Offset);
        }
        long? start = Opt(s.Start), stop = Opt(s.Stop), step = Opt(s.Step);
        int count = target switch
        {
            List<object?> l => l.Count,
            string str => str.Length,
            Undefined u => throw Fail($"{u.Description} is undefined (slicing it)", s.Offset),
            _ => throw Fail($"'{Values.TypeName(target)}' object is not subscriptable", s.Offset),
        };
        var idx = SliceIndices(count, start, stop, step ?? 1, s.Offset);
        if (target is string text)
        {
            var sb = new StringBuilder(idx.Count);
            foreach (int i in idx) sb.Append(text[i]);
            return NewString(sb.ToString(), s.Offset);
        }
        var list = (List<object?>)target!;
        return NewList(idx.Select(i => list[i]).ToList(), s.Offset);
    }

    List<int> SliceIndices(int count, long? start, long? stop, long step, int at)
    {
        if (step == 0) throw Fail("slice step cannot be zero", at);
        long Norm(long v, long lo, long hi)
        {
            if (v < 0) v += count;
            return Math.Clamp(v, lo, hi);
        }
        var r = new List<int>();
        if (step > 0)
        {
            long a = start is null ? 0 : Norm(start.Value, 0, count), b = stop is null ? count : Norm(stop.Value, 0, count);
            for (long i = a; i < b; i += step) r.Add((int)i);
        }
        else
        {
            long a = start is null ? count - 1 : Norm(start.Value, -1, count - 1), b = stop is null ? -1 : Norm(stop.Value, -1, count - 1);
            for (long i = a; i > b; i += step) r.Add((int)i);
        }
        return r;
    }

    List<object?> Iterate(object? v, int at)
    {
        switch (v)
        {
            case List<object?> l: return [.. l];
            case Dictionary<string, object?> d: return d.Keys.Cast<object?>().ToList();
            case string s:
            {
                var r = new List<object?>(s.Length);
                foreach (char c in s) r.Add(c.ToString());
                return r;
            }
            case Undefined: return [];
            default: throw Fail($"'{Values.TypeName(v)}' object is not iterable", at);
        }
    }

    // ---------------- calls ----------------

    object? Call(CallExpr c)
    {
        if (c.Callee is NameExpr n)
        {
            var args = c.Args.Select(Eval).ToList();
            var kwargs = c.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value));
            switch (n.Name)
            {
                case "raise_exception":
                {
                    var (line, col) = map.Locate(c.Offset);
                    string msg = args.Count > 0 ? Values.Str(args[0]) : "raise_exception() called";
                    throw new ChatTemplateException($"chat template error: {msg}", line, col, raisedByTemplate: true);
                }
                case "range": return Range(args, c.Offset);
                case "namespace":
                {
                    var ns = new Namespace();
                    foreach (var arg in args)
                        if (arg is Dictionary<string, object?> d) foreach (var (k, v) in d) ns.Attributes[k] = v;
                    foreach (var (k, v) in kwargs) ns.Attributes[k] = v;
                    return ns;
                }
                case "dict":
                {
                    var d = new Dictionary<string, object?>(StringComparer.Ordinal);
                    foreach (var arg in args)
                        if (arg is Dictionary<string, object?> src) foreach (var (k, v) in src) d[k] = v;
                    foreach (var (k, v) in kwargs) d[k] = v;
                    return d;
                }
                default:
                    throw Fail(Lookup(n.Name) is Undefined ? $"unsupported function '{n.Name}'" : $"'{n.Name}' is not callable", c.Offset);
            }
        }
        if (c.Callee is AttrExpr a)
        {
            var target = Eval(a.Target);
            var args = c.Args.Select(Eval).ToList();
            var kwargs = c.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value));
            return Method(target, a.Name, args, kwargs, c.Offset);
        }
        throw Fail("unsupported call: only functions and methods can be called", c.Offset);
    }

    List<object?> Range(List<object?> args, int at)
    {
        if (args.Count is < 1 or > 3 || args.Any(x => x is not (long or bool))) throw Fail("range() expects 1 to 3 integer arguments", at);
        long start = 0, stop, step = 1;
        if (args.Count == 1) stop = Values.ToLong(args[0]);
        else { start = Values.ToLong(args[0]); stop = Values.ToLong(args[1]); if (args.Count == 3) step = Values.ToLong(args[2]); }
        if (step == 0) throw Fail("range() step must not be zero", at);
        double n = Math.Max(0, Math.Ceiling(((double)stop - start) / step));
        if (n > limits.MaxRange) throw Fail($"range() of {n} items exceeds the limit of {limits.MaxRange}", at);
        var r = new List<object?>((int)n);
        for (long i = 0; i < (long)n; i++) r.Add(start + i * step);
        return NewList(r, at);
    }

    static string? OptString(List<object?> args, int i) => i < args.Count && args[i] is string s ? s : null;

    object? Method(object? target, string name, List<object?> args, Dictionary<string, object?> kwargs, int at)
    {
        switch (target)
        {
            case Undefined u:
                throw Fail($"{u.Description} is undefined (calling '.{name}()')", at);
            case string s:
                switch (name)
                {
                    case "upper": return NewString(s.ToUpperInvariant(), at);
                    case "lower": return NewString(s.ToLowerInvariant(), at);
                    case "strip": return NewString(Strip(s, OptString(args, 0), true, true), at);
                    case "lstrip": return NewString(Strip(s, OptString(args, 0), true, false), at);
                    case "rstrip": return NewString(Strip(s, OptString(args, 0), false, true), at);
                    case "title": return NewString(Title(s), at);
                    case "capitalize": return NewString(Capitalize(s), at);
                    case "startswith": return Affix(s, args, at, true);
                    case "endswith": return Affix(s, args, at, false);
                    case "split":
                    {
                        var sep = args.Count > 0 ? args[0] : kwargs.GetValueOrDefault("sep");
                        var max = args.Count > 1 ? args[1] : kwargs.GetValueOrDefault("maxsplit");
                        return NewList(Split(s, sep as string, max is long m ? m : -1, at), at);
                    }
                    case "replace":
                    {
                        if (args.Count < 2 || args[0] is not string o || args[1] is not string nw) throw Fail("replace() expects two strings", at);
                        return NewString(Replace(s, o, nw, args.Count > 2 && args[2] is long cnt ? cnt : -1, at), at);
                    }
                    case "find": return args.Count > 0 && args[0] is string f ? (long)s.IndexOf(f, StringComparison.Ordinal) : throw Fail("find() expects a string", at);
                    case "count": return args.Count > 0 && args[0] is string f2 ? (long)CountOf(s, f2) : throw Fail("count() expects a string", at);
                    case "join":
                        return NewString(string.Join(s, Iterate(args.Count > 0 ? args[0] : null, at).Select(Values.Str)), at);
                    case "isdigit": return s.Length > 0 && s.All(char.IsDigit);
                    case "isspace": return s.Length > 0 && s.All(char.IsWhiteSpace);
                }
                break;
            case Dictionary<string, object?> d:
                switch (name)
                {
                    case "items": return NewList(d.Select(p => (object?)new List<object?> { p.Key, p.Value }).ToList(), at);
                    case "keys": return NewList(d.Keys.Cast<object?>().ToList(), at);
                    case "values": return NewList(d.Values.ToList(), at);
                    case "get":
                        if (args.Count < 1) throw Fail("get() expects a key", at);
                        return args[0] is string k && d.TryGetValue(k, out var v) ? v : args.Count > 1 ? args[1] : null;
                }
                break;
            case LoopInfo loop when name == "cycle":
                if (args.Count == 0) throw Fail("loop.cycle() needs at least one argument", at);
                return args[loop.Index0 % args.Count];
            case List<object?> when name is "append" or "extend" or "insert" or "pop" or "remove" or "clear" or "sort" or "reverse":
                throw Fail($"lists cannot be modified in a chat template (list.{name}); build a new list with '+' instead", at);
        }
        throw Fail($"unsupported method '{name}' on {Values.TypeName(target)}", at);
    }

    bool Affix(string s, List<object?> args, int at, bool prefix)
    {
        if (args.Count < 1) throw Fail($"{(prefix ? "startswith" : "endswith")}() expects an argument", at);
        IEnumerable<object?> options = args[0] is List<object?> l ? l : [args[0]];
        foreach (var o in options)
        {
            if (o is not string p) throw Fail($"{(prefix ? "startswith" : "endswith")}() expects strings", at);
            if (prefix ? s.StartsWith(p, StringComparison.Ordinal) : s.EndsWith(p, StringComparison.Ordinal)) return true;
        }
        return false;
    }

    static string Strip(string s, string? chars, bool left, bool right)
    {
        if (chars is null) return left && right ? s.Trim() : left ? s.TrimStart() : s.TrimEnd();
        var set = chars.ToCharArray();
        return left && right ? s.Trim(set) : left ? s.TrimStart(set) : s.TrimEnd(set);
    }

    static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool prevLetter = false;
        foreach (char c in s)
        {
            sb.Append(prevLetter ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            prevLetter = char.IsLetter(c) || c == '\'';
        }
        return sb.ToString();
    }

    static int CountOf(string s, string f)
    {
        if (f.Length == 0) return s.Length + 1;
        int n = 0;
        for (int i = s.IndexOf(f, StringComparison.Ordinal); i >= 0; i = s.IndexOf(f, i + f.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    string Replace(string s, string old, string nw, long count, int at)
    {
        if (count < 0 && old.Length > 0)
        {
            long growth = (long)CountOf(s, old) * (nw.Length - old.Length);
            if (s.Length + growth > limits.MaxOutputLength) throw Fail($"string longer than {limits.MaxOutputLength} characters", at);
            return s.Replace(old, nw, StringComparison.Ordinal);
        }
        var sb = new StringBuilder();
        int pos = 0;
        long done = 0;
        if (old.Length == 0)
        {
            // Python: inserts nw between every character (and at both ends).
            for (int i = 0; i <= s.Length; i++)
            {
                if (count < 0 || done < count) { sb.Append(nw); done++; }
                if (i < s.Length) sb.Append(s[i]);
                if (sb.Length > limits.MaxOutputLength) throw Fail($"string longer than {limits.MaxOutputLength} characters", at);
            }
            return sb.ToString();
        }
        while (done < count)
        {
            int i = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (i < 0) break;
            sb.Append(s, pos, i - pos).Append(nw);
            pos = i + old.Length;
            done++;
            if (sb.Length > limits.MaxOutputLength) throw Fail($"string longer than {limits.MaxOutputLength} characters", at);
        }
        sb.Append(s, pos, s.Length - pos);
        return sb.ToString();
    }

    List<object?> Split(string s, string? sep, long maxsplit, int at)
    {
        var r = new List<object?>();
        if (sep is null)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i >= s.Length) break;
                if (maxsplit >= 0 && r.Count >= maxsplit) { r.Add(s[i..].TrimEnd()); break; }
                int j = i;
                while (j < s.Length && !char.IsWhiteSpace(s[j])) j++;
                r.Add(s[i..j]);
                i = j;
            }
            return r;
        }
        if (sep.Length == 0) throw Fail("empty separator", at);
        int pos = 0;
        while (maxsplit < 0 || r.Count < maxsplit)
        {
            int k = s.IndexOf(sep, pos, StringComparison.Ordinal);
            if (k < 0) break;
            r.Add(s[pos..k]);
            pos = k + sep.Length;
            Step(at);
        }
        r.Add(s[pos..]);
        return r;
    }

    // ---------------- filters ----------------

    object? Filter(FilterExpr f)
    {
        var v = Eval(f.Target);
        var args = f.Args.Select(Eval).ToList();
        var kwargs = f.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value));
        return ApplyFilter(f.Name, v, args, kwargs, f.Offset);
    }

    object? Arg(List<object?> args, Dictionary<string, object?> kwargs, int i, string name, object? fallback) =>
        i < args.Count ? args[i] : kwargs.TryGetValue(name, out var v) ? v : fallback;

    object? ApplyFilter(string name, object? v, List<object?> args, Dictionary<string, object?> kwargs, int at)
    {
        switch (name)
        {
            case "upper": return NewString(Values.Str(v).ToUpperInvariant(), at);
            case "lower": return NewString(Values.Str(v).ToLowerInvariant(), at);
            case "capitalize": return NewString(Capitalize(Values.Str(v)), at);
            case "title": return NewString(Title(Values.Str(v)), at);
            case "trim": return NewString(Strip(Values.Str(v), Arg(args, kwargs, 0, "chars", null) as string, true, true), at);
            case "string": return NewString(Values.Str(v), at);
            case "safe": return v;
            case "length" or "count":
                return v switch
                {
                    string s => (long)s.Length,
                    List<object?> l => (long)l.Count,
                    Dictionary<string, object?> d => (long)d.Count,
                    Undefined => 0L,
                    _ => throw Fail($"object of type '{Values.TypeName(v)}' has no length", at),
                };
            case "first":
            {
                var items = Iterate(v, at);
                return items.Count > 0 ? items[0] : new Undefined("first item of an empty sequence");
            }
            case "last":
            {
                var items = Iterate(v, at);
                return items.Count > 0 ? items[^1] : new Undefined("last item of an empty sequence");
            }
            case "join":
            {
                string sep = Values.Str(Arg(args, kwargs, 0, "d", ""));
                var attr = Arg(args, kwargs, 1, "attribute", null) as string;
                var items = Iterate(v, at).Select(x => Values.Str(attr is null ? x : Attribute(x, attr, at)));
                return NewString(string.Join(sep, items), at);
            }
            case "replace":
            {
                if (args.Count < 2 || args[0] is not string o || args[1] is not string nw) throw Fail("replace filter expects two strings", at);
                return NewString(Replace(Values.Str(v), o, nw, args.Count > 2 && args[2] is long c ? c : -1, at), at);
            }
            case "default" or "d":
            {
                var fallback = Arg(args, kwargs, 0, "default_value", "");
                bool boolean = Values.Truthy(Arg(args, kwargs, 1, "boolean", false));
                return v is Undefined || (boolean && !Values.Truthy(v)) ? fallback : v;
            }
            case "selectattr" or "rejectattr":
            {
                if (args.Count < 1 || args[0] is not string attr) throw Fail($"{name} expects an attribute name", at);
                bool keep = name == "selectattr";
                var r = new List<object?>();
                foreach (var item in Iterate(v, at))
                {
                    Step(at);
                    var a = Attribute(item, attr, at);
                    bool ok = args.Count > 1 ? Test(args[1] as string ?? throw Fail("test name must be a string", at), a, args.Skip(2).ToList(), at) : Values.Truthy(a);
                    if (ok == keep) r.Add(item);
                }
                return NewList(r, at);
            }
            case "select" or "reject":
            {
                bool keep = name == "select";
                var r = new List<object?>();
                foreach (var item in Iterate(v, at))
                {
                    Step(at);
                    bool ok = args.Count > 0 ? Test(args[0] as string ?? throw Fail("test name must be a string", at), item, args.Skip(1).ToList(), at) : Values.Truthy(item);
                    if (ok == keep) r.Add(item);
                }
                return NewList(r, at);
            }
            case "map":
            {
                var r = new List<object?>();
                if (kwargs.TryGetValue("attribute", out var attrObj) && attrObj is string attr)
                {
                    bool hasDefault = kwargs.TryGetValue("default", out var dflt);
                    foreach (var item in Iterate(v, at))
                    {
                        Step(at);
                        var x = Attribute(item, attr, at);
                        r.Add(x is Undefined && hasDefault ? dflt : x);
                    }
                }
                else if (args.Count > 0 && args[0] is string filterName)
                {
                    foreach (var item in Iterate(v, at))
                    {
                        Step(at);
                        r.Add(ApplyFilter(filterName, item, args.Skip(1).ToList(), [], at));
                    }
                }
                else throw Fail("map expects a filter name or attribute=", at);
                return NewList(r, at);
            }
            case "list": return NewList(Iterate(v, at), at);
            case "items":
                if (v is Undefined) return new List<object?>();
                if (v is not Dictionary<string, object?> dict) throw Fail("items filter expects a mapping", at);
                return NewList(dict.Select(p => (object?)new List<object?> { p.Key, p.Value }).ToList(), at);
            case "dictsort":
                if (v is not Dictionary<string, object?> dd) throw Fail("dictsort expects a mapping", at);
                return NewList(dd.OrderBy(p => p.Key, StringComparer.OrdinalIgnoreCase).Select(p => (object?)new List<object?> { p.Key, p.Value }).ToList(), at);
            case "reverse":
                if (v is string rs) { var arr = rs.ToCharArray(); Array.Reverse(arr); return NewString(new string(arr), at); }
                { var l = Iterate(v, at); l.Reverse(); return NewList(l, at); }
            case "unique":
            {
                var r = new List<object?>();
                foreach (var item in Iterate(v, at))
                {
                    Step(at);
                    bool seen = false;
                    foreach (var x in r) { Step(at); if (Values.Equal(x, item)) { seen = true; break; } }
                    if (!seen) r.Add(item);
                }
                return NewList(r, at);
            }
            case "sum":
            {
                object? total = Arg(args, kwargs, 1, "start", 0L);
                var attr = Arg(args, kwargs, 0, "attribute", null) as string;
                foreach (var item in Iterate(v, at)) total = Binary("+", total, attr is null ? item : Attribute(item, attr, at), at);
                return total;
            }
            case "int":
                return v switch
                {
                    long or bool => Values.ToLong(v),
                    double d when !double.IsNaN(d) && !double.IsInfinity(d) && Math.Abs(d) < 9e18 => (long)Math.Truncate(d),
                    string s when long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n) => n,
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double pd) && Math.Abs(pd) < 9e18 => (long)Math.Truncate(pd),
                    _ => Arg(args, kwargs, 0, "default", 0L),
                };
            case "float":
                return v switch
                {
                    long or bool or double => Values.ToDouble(v),
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
                    _ => Arg(args, kwargs, 0, "default", 0.0),
                };
            case "abs":
                return v switch
                {
                    long n => Checked(() => checked(Math.Abs(n)), at),
                    bool b => b ? 1L : 0L,
                    double d => Math.Abs(d),
                    _ => throw Fail($"bad operand type for abs(): '{Values.TypeName(v)}'", at),
                };
            case "tojson":
            {
                var ind = Arg(args, kwargs, 0, "indent", null);
                int? indent = ind is long n ? (int)Math.Clamp(n, 0, 64) : null;
                bool sortKeys = Values.Truthy(kwargs.GetValueOrDefault("sort_keys"));
                return NewString(Values.ToJson(v, indent, sortKeys), at);
            }
        }
        throw Fail($"unsupported filter '{name}'", at);
    }

    /// <summary>Jinja's environment.getattr / getitem for selectattr, map(attribute=...), join(attribute=...); "a.b" paths allowed.</summary>
    object? Attribute(object? item, string attr, int at)
    {
        foreach (var part in attr.Split('.'))
        {
            if (item is Undefined) return item;
            item = long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out long i) && item is List<object?>
                ? GetItem(item, i, at)
                : item is Dictionary<string, object?> or Namespace or LoopInfo ? GetAttr(item, part, at) : new Undefined($"attribute '{part}'");
        }
        return item;
    }

    // ---------------- tests ----------------

    bool Test(string name, object? v, List<object?> args, int at)
    {
        object? Arg0() => args.Count > 0 ? args[0] : throw Fail($"test '{name}' expects an argument", at);
        switch (name)
        {
            case "defined": return v is not Undefined;
            case "undefined": return v is Undefined;
            case "none": return v is null;
            case "string": return v is string;
            case "number": return v is long or double or bool;
            case "integer": return v is long;
            case "float": return v is double;
            case "boolean": return v is bool;
            case "true": return v is true;
            case "false": return v is false;
            case "mapping": return v is Dictionary<string, object?>;
            case "iterable": return v is string or List<object?> or Dictionary<string, object?> or Undefined;
            case "sequence": return v is string or List<object?> or Dictionary<string, object?>;
            case "callable": return false;
            case "lower": return v is string ls && ls == ls.ToLowerInvariant();
            case "upper": return v is string us && us == us.ToUpperInvariant();
            case "even": return v is long e ? e % 2 == 0 : throw Fail("test 'even' expects an integer", at);
            case "odd": return v is long o ? o % 2 != 0 : throw Fail("test 'odd' expects an integer", at);
            case "divisibleby":
            {
                var d = Arg0();
                if (v is not long a || d is not long b || b == 0) throw Fail("test 'divisibleby' expects non-zero integers", at);
                return a % b == 0;
            }
            case "equalto" or "eq" or "==" or "sameas": return Values.Equal(v, Arg0());
            case "ne" or "!=": return !Values.Equal(v, Arg0());
            case "lt" or "lessthan" or "<": return Compare("<", v, Arg0(), at);
            case "gt" or "greaterthan" or ">": return Compare(">", v, Arg0(), at);
            case "le" or "<=": return Compare("<=", v, Arg0(), at);
            case "ge" or ">=": return Compare(">=", v, Arg0(), at);
            case "in": return Contains(Arg0(), v, at);
        }
        throw Fail($"unsupported test '{name}'", at);
    }
}
