namespace Llava.Text.Jinja;

/// <summary>Recursive-descent parser for the supported Jinja subset; nesting depth is bounded.</summary>
internal sealed class Parser
{
    readonly List<Item> items;
    readonly SourceMap map;
    readonly int maxDepth;
    int itemIndex;
    int depth;

    // Token cursor of the tag being parsed.
    List<Token> toks = [];
    int tp;

    Parser(List<Item> items, SourceMap map, int maxDepth)
    {
        this.items = items;
        this.map = map;
        this.maxDepth = maxDepth;
    }

    public static List<Node> Parse(List<Item> items, SourceMap map, int maxDepth)
    {
        var p = new Parser(items, map, maxDepth);
        var body = p.ParseBody([], out var end, out int endOffset);
        if (end is not null) throw map.Error($"unexpected '{end}' with no matching block", endOffset);
        return body;
    }

    void Enter(int offset)
    {
        if (++depth > maxDepth) throw map.Error($"template nesting is deeper than {maxDepth} levels", offset);
    }

    /// <summary>Parses nodes until one of <paramref name="endTags"/> (its tag name is consumed, the rest of the tag is left in the cursor).</summary>
    List<Node> ParseBody(string[] endTags, out string? endTag, out int endOffset)
    {
        var nodes = new List<Node>();
        while (itemIndex < items.Count)
        {
            var item = items[itemIndex++];
            switch (item.Kind)
            {
                case ItemKind.Text:
                    nodes.Add(new TextNode(item.Text, item.Offset));
                    break;
                case ItemKind.Output:
                    Begin(item);
                    var e = ParseExpression();
                    ExpectEnd();
                    nodes.Add(new OutputNode(e, item.Offset));
                    break;
                case ItemKind.Statement:
                    Begin(item);
                    var kw = Peek();
                    if (kw.Kind != TokenKind.Name) throw map.Error("expected a statement name after '{%'", kw.Offset);
                    if (Array.IndexOf(endTags, kw.Text) >= 0)
                    {
                        tp++;
                        endTag = kw.Text;
                        endOffset = kw.Offset;
                        return nodes;
                    }
                    nodes.Add(ParseStatement(kw));
                    break;
            }
        }
        if (endTags.Length > 0)
        {
            int at = items.Count > 0 ? items[^1].Offset : 0;
            throw map.Error($"unexpected end of template; expected '{string.Join("' or '", endTags)}'", at);
        }
        endTag = null;
        endOffset = 0;
        return nodes;
    }

    void Begin(Item item)
    {
        toks = item.Tokens;
        tp = 0;
    }

    Node ParseStatement(Token kw)
    {
        tp++;
        Enter(kw.Offset);
        try
        {
            switch (kw.Text)
            {
                case "if": return ParseIf(kw);
                case "for": return ParseFor(kw);
                case "set": return ParseSet(kw);
                case "generation":
                {
                    ExpectEnd();
                    var body = ParseBody(["endgeneration"], out _, out _);
                    ExpectEnd();
                    return new GenerationNode(body, kw.Offset);
                }
                case "break": ExpectEnd(); return new BreakNode(kw.Offset);
                case "continue": ExpectEnd(); return new ContinueNode(kw.Offset);
                case "elif" or "else" or "endif" or "endfor" or "endset" or "endgeneration":
                    throw map.Error($"unexpected '{kw.Text}' with no matching block", kw.Offset);
                default:
                    throw map.Error($"unsupported statement '{kw.Text}'", kw.Offset);
            }
        }
        finally { depth--; }
    }

    Node ParseIf(Token kw)
    {
        var branches = new List<(Expr, List<Node>)>();
        var cond = ParseExpression();
        ExpectEnd();
        while (true)
        {
            var body = ParseBody(["elif", "else", "endif"], out var end, out _);
            branches.Add((cond, body));
            if (end == "elif")
            {
                cond = ParseExpression();
                ExpectEnd();
                continue;
            }
            List<Node>? elseBody = null;
            if (end == "else")
            {
                ExpectEnd();
                elseBody = ParseBody(["endif"], out _, out _);
            }
            ExpectEnd();
            return new IfNode(branches, elseBody, kw.Offset);
        }
    }

    Node ParseFor(Token kw)
    {
        var targets = new List<string> { ExpectName() };
        while (AcceptOp(",")) targets.Add(ExpectName());
        var inTok = Next();
        if (inTok.Kind != TokenKind.Name || inTok.Text != "in") throw map.Error("expected 'in' in for loop", inTok.Offset);
        var iterable = ParseOr();
        if (Peek().Kind == TokenKind.Operator && Peek().Text == ",")
        {
            var list = new List<Expr> { iterable };
            while (AcceptOp(",") && Peek().Kind != TokenKind.End && !IsName("if")) list.Add(ParseOr());
            iterable = new ListExpr(list, iterable.Offset);
        }
        Expr? filter = null;
        if (AcceptName("if")) filter = ParseOr();
        if (IsName("recursive")) throw map.Error("unsupported construct 'recursive' loop", Peek().Offset);
        ExpectEnd();
        var body = ParseBody(["else", "endfor"], out var end, out _);
        List<Node>? elseBody = null;
        if (end == "else")
        {
            ExpectEnd();
            elseBody = ParseBody(["endfor"], out _, out _);
        }
        ExpectEnd();
        return new ForNode(targets, iterable, filter, body, elseBody, kw.Offset);
    }

    Node ParseSet(Token kw)
    {
        var name = ExpectName();
        if (AcceptOp("."))
        {
            var attr = ExpectName();
            ExpectOp("=");
            var v = ParseExpression();
            ExpectEnd();
            return new SetNode([name], attr, v, kw.Offset);
        }
        var targets = new List<string> { name };
        while (AcceptOp(",")) targets.Add(ExpectName());
        if (targets.Count == 1 && Peek().Kind == TokenKind.End)
        {
            ExpectEnd();
            var body = ParseBody(["endset"], out _, out _);
            ExpectEnd();
            return new SetBlockNode(name, body, kw.Offset);
        }
        ExpectOp("=");
        var value = ParseExpression();
        if (Peek().Kind == TokenKind.Operator && Peek().Text == ",")
        {
            var list = new List<Expr> { value };
            while (AcceptOp(",")) list.Add(ParseExpression());
            value = new ListExpr(list, value.Offset);
        }
        ExpectEnd();
        return new SetNode(targets, null, value, kw.Offset);
    }

    // ---- expressions ----

    Token Peek() => toks[tp];
    Token Next() => toks[tp < toks.Count - 1 ? tp++ : tp];
    bool IsName(string n) => Peek().Kind == TokenKind.Name && Peek().Text == n;
    bool IsOp(string o) => Peek().Kind == TokenKind.Operator && Peek().Text == o;
    bool AcceptName(string n) { if (!IsName(n)) return false; tp++; return true; }
    bool AcceptOp(string o) { if (!IsOp(o)) return false; tp++; return true; }

    void ExpectOp(string o)
    {
        if (!AcceptOp(o)) throw Unexpected($"expected '{o}'");
    }

    string ExpectName()
    {
        var t = Peek();
        if (t.Kind != TokenKind.Name) throw Unexpected("expected a name");
        tp++;
        return t.Text;
    }

    void ExpectEnd()
    {
        if (Peek().Kind != TokenKind.End) throw Unexpected("expected end of tag");
    }

    ChatTemplateException Unexpected(string what)
    {
        var t = Peek();
        string found = t.Kind == TokenKind.End ? "end of tag" : $"'{t.Text}'";
        return map.Error($"{what}, found {found}", t.Offset);
    }

    Expr ParseExpression()
    {
        var e = ParseOr();
        if (IsName("if"))
        {
            int at = Peek().Offset;
            tp++;
            var cond = ParseOr();
            Expr? otherwise = null;
            if (AcceptName("else")) otherwise = ParseExpression();
            return new CondExpr(cond, e, otherwise, at);
        }
        return e;
    }

    Expr ParseOr()
    {
        var e = ParseAnd();
        while (IsName("or")) { int at = Next().Offset; e = new BinaryExpr("or", e, ParseAnd(), at); }
        return e;
    }

    Expr ParseAnd()
    {
        var e = ParseNot();
        while (IsName("and")) { int at = Next().Offset; e = new BinaryExpr("and", e, ParseNot(), at); }
        return e;
    }

    Expr ParseNot()
    {
        if (IsName("not"))
        {
            var t = Next();
            Enter(t.Offset);
            try { return new UnaryExpr("not", ParseNot(), t.Offset); }
            finally { depth--; }
        }
        return ParseCompare();
    }

    Expr ParseCompare()
    {
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            var t = Peek();
            if (t.Kind == TokenKind.Operator && t.Text is "==" or "!=" or "<" or ">" or "<=" or ">=") { tp++; rest.Add((t.Text, ParseMath1())); }
            else if (IsName("in")) { tp++; rest.Add(("in", ParseMath1())); }
            else if (IsName("not") && tp + 1 < toks.Count && toks[tp + 1].Kind == TokenKind.Name && toks[tp + 1].Text == "in")
            {
                tp += 2;
                rest.Add(("not in", ParseMath1()));
            }
            else break;
        }
        return rest.Count == 0 ? first : new CompareExpr(first, rest, first.Offset);
    }

    Expr ParseMath1()
    {
        var e = ParseConcat();
        while (IsOp("+") || IsOp("-")) { var t = Next(); e = new BinaryExpr(t.Text, e, ParseConcat(), t.Offset); }
        return e;
    }

    Expr ParseConcat()
    {
        var e = ParseMath2();
        while (IsOp("~")) { var t = Next(); e = new BinaryExpr("~", e, ParseMath2(), t.Offset); }
        return e;
    }

    Expr ParseMath2()
    {
        var e = ParsePow();
        while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) { var t = Next(); e = new BinaryExpr(t.Text, e, ParsePow(), t.Offset); }
        return e;
    }

    Expr ParsePow()
    {
        var e = ParseUnary();
        while (IsOp("**")) { var t = Next(); e = new BinaryExpr("**", e, ParseUnary(), t.Offset); }
        return e;
    }

    /// <summary>Like Jinja's parse_unary: "-x | f" applies f to -x.</summary>
    Expr ParseUnary(bool withFilter = true)
    {
        var t = Peek();
        Enter(t.Offset);
        try
        {
            Expr e;
            if (IsOp("-") || IsOp("+")) { tp++; e = new UnaryExpr(t.Text, ParseUnary(false), t.Offset); }
            else e = ParsePostfix(ParsePrimary());
            return withFilter ? ParseFilterAndTests(e) : e;
        }
        finally { depth--; }
    }

    Expr ParseFilterAndTests(Expr e)
    {
        while (true)
        {
            if (IsOp("|"))
            {
                int at = Next().Offset;
                var name = ExpectName();
                var (args, kwargs) = IsOp("(") ? ParseArgs() : ([], []);
                e = ParsePostfix(new FilterExpr(e, name, args, kwargs, at));
            }
            else if (IsName("is"))
            {
                int at = Next().Offset;
                bool negated = AcceptName("not");
                var t = Peek();
                string name;
                if (t.Kind == TokenKind.Name) name = t.Text;
                else if (t.Kind == TokenKind.Operator && t.Text is "==" or "!=" or "<" or ">" or "<=" or ">=") name = t.Text;
                else throw Unexpected("expected a test name after 'is'");
                tp++;
                List<Expr> args = [];
                if (IsOp("(")) args = ParseArgs().Args;
                else if (StartsPrimary()) args = [ParsePostfix(ParsePrimary())];
                e = new TestExpr(e, name, args, negated, at);
            }
            else return e;
        }
    }

    bool StartsPrimary()
    {
        var t = Peek();
        if (t.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float) return true;
        if (t.Kind == TokenKind.Name) return t.Text is not ("and" or "or" or "not" or "in" or "is" or "if" or "else");
        return t.Kind == TokenKind.Operator && t.Text is "[" or "{";
    }

    Expr ParsePostfix(Expr e)
    {
        while (true)
        {
            var t = Peek();
            if (IsOp("."))
            {
                tp++;
                var n = Peek();
                if (n.Kind == TokenKind.Name) { tp++; e = new AttrExpr(e, n.Text, t.Offset); }
                else if (n.Kind == TokenKind.Integer) { tp++; e = new ItemExpr(e, new LiteralExpr(n.Value, n.Offset), t.Offset); }
                else throw Unexpected("expected an attribute name after '.'");
            }
            else if (IsOp("["))
            {
                tp++;
                Enter(t.Offset);
                try { e = ParseSubscript(e, t.Offset); }
                finally { depth--; }
            }
            else if (IsOp("("))
            {
                Enter(t.Offset);
                try
                {
                    var (args, kwargs) = ParseArgs();
                    e = new CallExpr(e, args, kwargs, t.Offset);
                }
                finally { depth--; }
            }
            else return e;
        }
    }

    Expr ParseSubscript(Expr target, int at)
    {
        Expr? start = null, stop = null, step = null;
        if (!IsOp(":")) start = ParseExpression();
        if (AcceptOp(":"))
        {
            if (!IsOp(":") && !IsOp("]")) stop = ParseExpression();
            if (AcceptOp(":") && !IsOp("]")) step = ParseExpression();
            ExpectOp("]");
            return new SliceExpr(target, start, stop, step, at);
        }
        ExpectOp("]");
        return new ItemExpr(target, start!, at);
    }

    (List<Expr> Args, List<(string, Expr)> Kwargs) ParseArgs()
    {
        ExpectOp("(");
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!IsOp(")"))
        {
            if (Peek().Kind == TokenKind.Name && tp + 1 < toks.Count && toks[tp + 1].Kind == TokenKind.Operator && toks[tp + 1].Text == "=")
            {
                var name = Next().Text;
                tp++;
                kwargs.Add((name, ParseExpression()));
            }
            else
            {
                if (kwargs.Count > 0) throw Unexpected("positional argument after keyword argument");
                args.Add(ParseExpression());
            }
            if (!AcceptOp(",")) break;
        }
        ExpectOp(")");
        return (args, kwargs);
    }

    Expr ParsePrimary()
    {
        var t = Peek();
        switch (t.Kind)
        {
            case TokenKind.String:
            {
                tp++;
                string s = (string)t.Value!;
                while (Peek().Kind == TokenKind.String) s += (string)Next().Value!; // implicit concatenation
                return new LiteralExpr(s, t.Offset);
            }
            case TokenKind.Integer:
            case TokenKind.Float:
                tp++;
                return new LiteralExpr(t.Value, t.Offset);
            case TokenKind.Name:
                tp++;
                return t.Text switch
                {
                    "true" or "True" => new LiteralExpr(true, t.Offset),
                    "false" or "False" => new LiteralExpr(false, t.Offset),
                    "none" or "None" => new LiteralExpr(null, t.Offset),
                    "and" or "or" or "not" or "in" or "is" or "if" or "else" => throw map.Error($"unexpected keyword '{t.Text}'", t.Offset),
                    _ => new NameExpr(t.Text, t.Offset),
                };
            case TokenKind.Operator when t.Text == "(":
            {
                tp++;
                if (AcceptOp(")")) return new ListExpr([], t.Offset);
                var e = ParseExpression();
                if (IsOp(","))
                {
                    var list = new List<Expr> { e };
                    while (AcceptOp(",") && !IsOp(")")) list.Add(ParseExpression());
                    e = new ListExpr(list, t.Offset);
                }
                ExpectOp(")");
                return e;
            }
            case TokenKind.Operator when t.Text == "[":
            {
                tp++;
                var list = new List<Expr>();
                while (!IsOp("]"))
                {
                    list.Add(ParseExpression());
                    if (!AcceptOp(",")) break;
                }
                ExpectOp("]");
                return new ListExpr(list, t.Offset);
            }
            case TokenKind.Operator when t.Text == "{":
            {
                tp++;
                var pairs = new List<(Expr, Expr)>();
                while (!IsOp("}"))
                {
                    var k = ParseExpression();
                    ExpectOp(":");
                    pairs.Add((k, ParseExpression()));
                    if (!AcceptOp(",")) break;
                }
                ExpectOp("}");
                return new DictExpr(pairs, t.Offset);
            }
            default:
                throw Unexpected("expected an expression");
        }
    }
}
