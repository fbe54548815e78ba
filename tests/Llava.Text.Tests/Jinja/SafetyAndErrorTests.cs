using System.Diagnostics;
using Llava.Text.Jinja;

namespace Llava.Text.Tests.Jinja;

/// <summary>Hostile templates fail fast with ChatTemplateException; syntax errors name the position.</summary>
public class SafetyAndErrorTests
{
    static ChatTemplateException Fails(string template, TimeSpan? within = null)
    {
        var sw = Stopwatch.StartNew();
        var ex = Assert.Throws<ChatTemplateException>(() => JinjaTemplate.Parse(template).Render(new Dictionary<string, object?>()));
        Assert.True(sw.Elapsed < (within ?? TimeSpan.FromSeconds(10)), $"took {sw.Elapsed}");
        return ex;
    }

    [Fact]
    public void HugeRangeIsRejected() =>
        Assert.Contains("range()", Fails("{% for i in range(1000000000000) %}x{% endfor %}").Message);

    [Fact]
    public void NestedLoopsHitTheStepLimit() =>
        Assert.Contains("evaluation steps", Fails("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}").Message);

    [Fact]
    public void GiantOutputIsRejected() =>
        Assert.Contains("output exceeded", Fails("{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}").Message);

    [Fact]
    public void StringDoublingIsRejected() =>
        Fails("{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}");

    [Fact]
    public void HugeRepetitionIsRejected() =>
        Assert.Contains("longer than", Fails("{{ 'abc' * 1000000000000 }}").Message);

    [Fact]
    public void QuadraticListGrowthIsRejected() =>
        Fails("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [i, i, i, i, i, i, i, i, i, i] %}{% endfor %}");

    [Fact]
    public void DeepRuntimeNestingDoesNotOverflowTheStack() =>
        Assert.Contains("nested deeper", Fails("{% set ns = namespace(x=[]) %}{% for i in range(20000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}").Message);

    [Theory]
    [InlineData(10000, "{% if true %}", "{% endif %}")]
    [InlineData(100000, "(", ")")]
    [InlineData(100000, "[", "]")]
    [InlineData(100000, "not ", "")]
    [InlineData(100000, "-", "")]
    public void DeepSyntacticNestingIsRejected(int depth, string open, string close)
    {
        string inner = open.StartsWith("{%", StringComparison.Ordinal)
            ? string.Concat(Enumerable.Repeat(open, depth)) + string.Concat(Enumerable.Repeat(close, depth))
            : "{{ " + string.Concat(Enumerable.Repeat(open, depth)) + "1" + string.Concat(Enumerable.Repeat(close, depth)) + " }}";
        var ex = Assert.Throws<ChatTemplateException>(() => JinjaTemplate.Parse(inner));
        Assert.Contains("nesting", ex.Message);
    }

    [Fact]
    public void IntegerOverflowIsAnError() => Assert.Contains("overflow", Fails("{{ 9223372036854775807 + 1 }}").Message);

    [Fact]
    public void HugePowerIsBounded() => Fails("{{ 2 ** 100000000000 }}", TimeSpan.FromSeconds(2));

    [Fact]
    public void ListsAreImmutable() => Assert.Contains("cannot be modified", Fails("{% set l = [] %}{{ l.append(1) }}").Message);

    [Fact]
    public void NoAccessToHostObjects()
    {
        // Only data is reachable: there is no way to call into .NET objects or reach the environment.
        Assert.Contains("unsupported function 'cycler'", Fails("{{ cycler(1) }}").Message);
        Assert.Contains("unsupported method", Fails("{{ ''.__class__() }}").Message);
        Assert.Throws<ChatTemplateException>(() =>
            JinjaTemplate.Parse("{{ x }}").Render(new Dictionary<string, object?> { ["x"] = new Stopwatch() }));
    }

    [Fact]
    public void SyntaxErrorNamesLineAndColumn()
    {
        var ex = Assert.Throws<ChatTemplateException>(() => JinjaTemplate.Parse("Hello\n{% if x %}\n{{ x + }}{% endif %}"));
        Assert.Equal(3, ex.Line);
        Assert.Equal(8, ex.Column);
        Assert.Contains("expected an expression", ex.Message);
        Assert.Contains("line 3, column 8", ex.Message);
    }

    [Fact]
    public void UnsupportedStatementIsNamed()
    {
        var ex = Assert.Throws<ChatTemplateException>(() => JinjaTemplate.Parse("ab\n  {% macro f() %}x{% endmacro %}"));
        Assert.Contains("unsupported statement 'macro'", ex.Message);
        Assert.Equal((2, 6), (ex.Line, ex.Column));
    }

    [Fact]
    public void UnsupportedFilterIsNamed()
    {
        var ex = Fails("{{ 'a' | frobnicate }}");
        Assert.Contains("unsupported filter 'frobnicate'", ex.Message);
        Assert.Equal((1, 8), (ex.Line, ex.Column));
    }

    [Theory]
    [InlineData("{% if true %}x", "unexpected end of template")]
    [InlineData("{% endif %}", "unexpected 'endif'")]
    [InlineData("{% for x in y %}{% endif %}", "unexpected 'endif'")]
    [InlineData("{{ 'abc }}", "unterminated string")]
    [InlineData("{{ x ", "unclosed expression tag")]
    [InlineData("{# never closed", "unclosed comment")]
    [InlineData("{{ x $ y }}", "unexpected character '$'")]
    [InlineData("{% set %}", "expected a name")]
    [InlineData("{% for x in %}{% endfor %}", "expected an expression")]
    public void MalformedTemplates(string template, string message)
    {
        var ex = Assert.Throws<ChatTemplateException>(() => JinjaTemplate.Parse(template));
        Assert.Contains(message, ex.Message);
        Assert.True(ex.Line >= 1);
    }
}
