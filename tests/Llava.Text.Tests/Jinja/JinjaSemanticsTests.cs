using Llava.Text.Jinja;

namespace Llava.Text.Tests.Jinja;

/// <summary>The Jinja subset, one feature at a time; expectations follow Jinja2 semantics.</summary>
public class JinjaSemanticsTests
{
    static string R(string template, object? vars = null, JinjaOptions? options = null)
    {
        var dict = vars as IReadOnlyDictionary<string, object?> ?? new Dictionary<string, object?>();
        return JinjaTemplate.Parse(template, options).Render(dict);
    }

    static Dictionary<string, object?> V(params (string, object?)[] pairs) => pairs.ToDictionary(p => p.Item1, p => p.Item2);

    [Theory]
    [InlineData("{{ 'a' ~ 1 ~ none }}", "a1None")]
    [InlineData("{{ 1 + 2 * 3 }}", "7")]
    [InlineData("{{ 7 // 2 }},{{ -7 // 2 }},{{ 7 % 3 }},{{ -7 % 3 }},{{ 7 / 2 }},{{ 4 / 2 }}", "3,-4,1,2,3.5,2.0")]
    [InlineData("{{ 2 ** 10 }}", "1024")]
    [InlineData("{{ true }} {{ false }} {{ none }} {{ True }}", "True False None True")]
    [InlineData("{{ [1, 'a', none] }}", "[1, 'a', None]")]
    [InlineData("{{ {'k': 'v'} }}", "{'k': 'v'}")]
    [InlineData("{{ 'yes' if 1 < 2 else 'no' }}", "yes")]
    [InlineData("{{ 'x' if false }}", "")]
    [InlineData("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}", "True False")]
    [InlineData("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }}", "True True True True")]
    [InlineData("{{ not true or true and false }}", "False")]
    [InlineData("{{ 0 or 'fallback' }}|{{ 'a' and 'b' }}", "fallback|b")]
    [InlineData("{{ 'abc'[1] }}{{ 'abc'[-1] }}{{ [1,2,3][1:] }}{{ [1,2,3][::-1] }}{{ 'hello'[1:3] }}", "bc[2, 3][3, 2, 1]el")]
    [InlineData("{{ 'a' 'b' }}", "ab")]
    [InlineData("{{ 'tab\\there' }}", "tab\there")]
    [InlineData("{{ 1 == 1.0 }} {{ true == 1 }} {{ [1, [2]] == [1, [2]] }}", "True True True")]
    public void Expressions(string template, string expected) => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("{{ 'Ab' | upper }}{{ 'Ab' | lower }}{{ '  x ' | trim }}", "ABabx")]
    [InlineData("{{ [1,2,3] | length }}{{ 'abcd' | length }}{{ {'a':1} | count }}", "341")]
    [InlineData("{{ [1,2,3] | first }}{{ [1,2,3] | last }}{{ 'xyz' | first }}", "13x")]
    [InlineData("{{ ['a','b'] | join(', ') }}|{{ [1,2] | join }}", "a, b|12")]
    [InlineData("{{ 'aXbX' | replace('X', '-') }}", "a-b-")]
    [InlineData("{{ undefined_thing | default('d') }}|{{ '' | default('d') }}|{{ '' | default('d', true) }}", "d||d")]
    [InlineData("{{ 'ab' | list }}{{ 5 | string ~ 'x' }}", "['a', 'b']5x")]
    [InlineData("{{ {'a': [1, 'x\"'], 'b': none, 'c': true} | tojson }}", "{\"a\": [1, \"x\\\"\"], \"b\": null, \"c\": true}")]
    [InlineData("{{ {'a': 1} | tojson(indent=2) }}", "{\n  \"a\": 1\n}")]
    [InlineData("{{ 'é<' | tojson }}", "\"é<\"")]
    [InlineData("{{ [3,1,3] | unique | list }}{{ [1,2] | reverse | list }}{{ [1,2,3] | sum }}", "[3, 1][2, 1]6")]
    [InlineData("{{ '42' | int + 1 }}{{ 2 | float }}{{ -3 | abs }}", "432.03")]
    [InlineData("{{ 'hello world' | title }}{{ 'hELLO' | capitalize }}", "Hello WorldHello")]
    public void Filters(string template, string expected) => Assert.Equal(expected, R(template));

    [Fact]
    public void SelectAttrRejectAttrMap()
    {
        var parts = new List<object?>
        {
            new Dictionary<string, object?> { ["type"] = "text", ["text"] = "a" },
            new Dictionary<string, object?> { ["type"] = "image" },
            new Dictionary<string, object?> { ["type"] = "text", ["text"] = "b" },
        };
        var v = V(("parts", parts));
        Assert.Equal("2", R("{{ parts | selectattr('type', 'equalto', 'text') | list | length }}", v));
        Assert.Equal("1", R("{{ parts | rejectattr('type', 'equalto', 'text') | list | length }}", v));
        Assert.Equal("ab", R("{{ parts | selectattr('text') | map(attribute='text') | join }}", v));
        Assert.Equal("image", R("{{ (parts | rejectattr('text', 'defined') | first).type }}", v));
        Assert.Equal("A,B", R("{{ parts | selectattr('text', 'defined') | map(attribute='text') | map('upper') | join(',') }}", v));
    }

    [Theory]
    [InlineData("{{ x is defined }} {{ y is defined }} {{ y is undefined }}", "True False True")]
    [InlineData("{{ n is none }} {{ x is none }} {{ x is not none }}", "True False True")]
    [InlineData("{{ x is string }} {{ 1 is string }} {{ 1 is number }} {{ 2 is even }} {{ 3 is odd }}", "True False True True True")]
    [InlineData("{{ x is equalto 'v' }} {{ 6 is divisibleby(3) }} {{ d is mapping }} {{ l is sequence }}", "True True True True")]
    public void Tests(string template, string expected) =>
        Assert.Equal(expected, R(template, V(("x", "v"), ("n", null), ("d", new Dictionary<string, object?>()), ("l", new List<object?>()))));

    [Theory]
    [InlineData("{{ ' a b '.strip() }}|{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}", "a b|ABab")]
    [InlineData("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith('bc') }} {{ 'abc'.startswith(('x', 'a')) }}", "True True True")]
    [InlineData("{{ ' a  b '.split() }}{{ 'a,b,,c'.split(',') }}{{ 'a b c'.split(' ', 1) }}", "['a', 'b']['a', 'b', '', 'c']['a', 'b c']")]
    [InlineData("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}", "a=1;b=2;")]
    [InlineData("{{ 'xxhixx'.strip('x') }}{{ ', '.join(['a', 'b']) }}{{ {'a': 1}.get('b', 'none') }}", "hia, bnone")]
    public void Methods(string template, string expected) => Assert.Equal(expected, R(template));

    [Fact]
    public void LoopVariables()
    {
        Assert.Equal("1/0/True/False/3;2/1/False/False/3;3/2/False/True/3;",
            R("{% for x in ['a','b','c'] %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %}"));
        Assert.Equal("empty", R("{% for x in [] %}{{ x }}{% else %}empty{% endfor %}"));
        Assert.Equal("2,4,", R("{% for x in range(1, 5) if x is even %}{{ x }},{% endfor %}"));
        Assert.Equal("0,1,", R("{% for x in range(5) %}{% if x == 2 %}{% break %}{% endif %}{{ x }},{% endfor %}"));
        Assert.Equal("0,2,", R("{% for x in range(3) %}{% if x == 1 %}{% continue %}{% endif %}{{ x }},{% endfor %}"));
        Assert.Equal("a-b", R("{% for x in ['a','b'] %}{{ x }}{% if not loop.last %}-{% endif %}{% endfor %}"));
    }

    [Fact]
    public void SetAndNamespaceScoping()
    {
        // A plain set inside a loop does not leak out; a namespace attribute does.
        Assert.Equal("0|3", R("{% set count = 0 %}{% set ns = namespace(count=0) %}{% for x in [1,2,3] %}{% set count = count + 1 %}{% set ns.count = ns.count + 1 %}{% endfor %}{{ count }}|{{ ns.count }}"));
        Assert.Equal("<b>", R("{% set x %}<{{ 'b' }}>{% endset %}{{ x }}"));
        Assert.Equal("12", R("{% set a, b = 1, 2 %}{{ a }}{{ b }}"));
        Assert.Equal("x", R("{% if true %}{% set y = 'x' %}{% endif %}{{ y }}"));
    }

    [Fact]
    public void IfElifElseAndComments()
    {
        const string t = "{# comment #}{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %}";
        Assert.Equal("one", R(t, V(("n", 1))));
        Assert.Equal("two", R(t, V(("n", 2))));
        Assert.Equal("many", R(t, V(("n", 3))));
    }

    [Fact]
    public void GenerationBlockRendersItsBody() =>
        Assert.Equal("<a>", R("{% generation %}<{{ 'a' }}>{% endgeneration %}"));

    [Fact]
    public void WhitespaceControlMinus() =>
        Assert.Equal("a|b|c", R("a  \n {{- '|' -}} \n b {%- if true -%}  |  {%- endif -%}  c"));

    [Fact]
    public void TrimBlocksAndLstripBlocks()
    {
        const string t = "  {% if true %}\n  x\n  {% endif %}\ny\n    {# note #}\nz";
        Assert.Equal("  x\ny\nz", R(t));
        Assert.Equal("  \n  x\n  \ny\n    \nz", R(t, options: new JinjaOptions { TrimBlocks = false, LstripBlocks = false }));
        // lstrip_blocks does not apply to {{ }}, and "{%+" disables it.
        Assert.Equal("  a\n  b", R("  {{ 'a' }}\n  {%+ if true %}b{% endif %}"));
        // A block tag not at the start of a line keeps the text before it.
        Assert.Equal("x  y", R("x  {% if true %}y{% endif %}"));
    }

    [Fact]
    public void MultiLineChatMlTemplateWithTrimAndLstrip()
    {
        const string t = """
            {% for message in messages %}
                {{- '<|im_start|>' + message['role'] + '\n' }}
                {%- if message['content'] is string %}
                    {{- message['content'] }}
                {%- else %}
                    {%- for part in message['content'] %}
                        {%- if part['type'] == 'image' %}
                            {{- '<image>\n' }}
                        {%- elif part['type'] == 'text' %}
                            {{- part['text'] }}
                        {%- endif %}
                    {%- endfor %}
                {%- endif %}
                {{- '<|im_end|>\n' }}
            {%- endfor %}
            {% if add_generation_prompt %}
            <|im_start|>assistant
            {% endif %}

            """;
        var ct = new ChatTemplate(t);
        var msgs = new[] { new ChatMessage("system", "S"), new ChatMessage("user", ChatContentPart.Image, ChatContentPart.FromText("What?")) };
        Assert.Equal("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n<image>\nWhat?<|im_end|>\n<|im_start|>assistant\n", ct.Render(msgs, true));
        Assert.Equal("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n<image>\nWhat?<|im_end|>\n", ct.Render(msgs, false));
    }

    [Fact]
    public void AttributeAndItemAccessAreInterchangeableOnDicts()
    {
        var v = V(("m", new Dictionary<string, object?> { ["role"] = "user", ["content"] = "hi" }));
        Assert.Equal("user user hi", R("{{ m.role }} {{ m['role'] }} {{ m.content }}", v));
        Assert.Equal("True", R("{{ m.tool_calls is undefined }}", v));
    }

    [Fact]
    public void UndefinedPrintsEmptyButCannotBeDereferenced()
    {
        Assert.Equal("[]", R("[{{ nothing }}]"));
        var ex = Assert.Throws<ChatTemplateException>(() => R("{{ nothing.attr }}"));
        Assert.Contains("'nothing' is undefined", ex.Message);
    }

    [Fact]
    public void TypeErrorsAreChatTemplateExceptionsWithPosition()
    {
        var ex = Assert.Throws<ChatTemplateException>(() => R("ok\n{{ 'a' + 1 }}"));
        Assert.Equal(2, ex.Line);
        Assert.Contains("unsupported operand types", ex.Message);
    }
}
