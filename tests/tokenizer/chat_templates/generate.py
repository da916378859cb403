#!/usr/bin/env python3
"""Writes the expected outputs of the chat template tests with the real Jinja2.

    python3 tests/tokenizer/chat_templates/generate.py

Needs jinja2 >= 3.1 (Debian: python3-jinja2). The environment is the one
Hugging Face transformers builds in apply_chat_template():
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the
loopcontrols extension, raise_exception(), strftime_now() and a tojson filter
that is json.dumps(ensure_ascii=False, indent, separators, sort_keys). The
render context is messages, tools=None, documents=None,
add_generation_prompt, bos_token, eos_token, plus per-case variables.

Outputs:
  templates.json  every templates/*.jinja rendered over conversations
  engine.json     small templates exercising one engine feature each
"""

import json
import pathlib
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = pathlib.Path(__file__).resolve().parent

# strftime_now() reports this moment, so date-printing templates are
# reproducible; the C++ test pins the same local time.
PINNED_NOW = datetime(2025, 3, 9, 14, 30, 5)


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return PINNED_NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def render(source, context):
    """(output, None) or (None, error message)."""
    try:
        return ENV.from_string(source).render(**context), None
    except jinja2.exceptions.TemplateError as e:
        return None, str(e)
    except Exception as e:  # evaluation errors (TypeError, ...) are template errors too
        return None, f"{type(e).__name__}: {e}"


SYSTEM = {"role": "system", "content": "You are a terse assistant. Answer in one line."}
CONVERSATIONS = {
    "single-user": [{"role": "user", "content": "Hello!"}],
    "multi-turn": [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "  4  "},
        {"role": "user", "content": "And 3+3?\n"},
    ],
    "system-multi-turn": [
        SYSTEM,
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another, in French: é, 日本語 🙂?"},
    ],
    "ends-with-assistant": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! <think>\nplan\n</think>\nHow can I help?"},
    ],
    "not-alternating": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TOOL_CALL_CONVERSATION = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call12345", "type": "function",
         "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
    {"role": "tool", "tool_call_id": "call12345", "content": "{\"temperature\": 18.5, \"sky\": \"clear\"}"},
]

# Special tokens as each model's tokenizer defines them.
TOKENS = {
    "llama-2-chat": ("<s>", "</s>"),
    "llama-3-instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama-3.1-instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama-3.2-instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "mistral-7b-instruct-v0.2": ("<s>", "</s>"),
    "mistral-7b-instruct-v0.3": ("<s>", "</s>"),
    "qwen2.5-instruct": ("", "<|im_end|>"),
    "chatml": ("<s>", "<|im_end|>"),
    "gemma-2-it": ("<bos>", "<eos>"),
    "phi-3-mini-4k-instruct": ("<s>", "<|endoftext|>"),
    "phi-3.5-mini-instruct": ("<s>", "<|endoftext|>"),
    "deepseek-llm-chat": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "deepseek-coder-instruct": ("<｜begin▁of▁sentence｜>", "<|EOT|>"),
    "deepseek-r1-distill-qwen": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "tiny-llama-target": ("<s>", "</s>"),
    "tiny-qwen2-bpe": ("", "<|endoftext|>"),
}

# Extra cases: tool use and template variables, for the templates that have them.
EXTRA = {
    "llama-3.1-instruct": [
        ("tools-in-user-message", {"messages": CONVERSATIONS["system-multi-turn"], "tools": [WEATHER_TOOL]}),
        ("tools-in-system", {"messages": CONVERSATIONS["multi-turn"], "tools": [WEATHER_TOOL],
                             "tools_in_user_message": False, "date_string": "01 Jan 2025"}),
        ("tool-call-and-result", {"messages": TOOL_CALL_CONVERSATION}),
        ("builtin-tools", {"messages": CONVERSATIONS["single-user"], "builtin_tools": ["brave_search", "wolfram_alpha"]}),
    ],
    "llama-3.2-instruct": [
        ("tools-in-user-message", {"messages": CONVERSATIONS["multi-turn"], "tools": [WEATHER_TOOL]}),
        ("date-string", {"messages": CONVERSATIONS["single-user"], "date_string": "26 Jul 2024"}),
        ("tool-call-and-result", {"messages": TOOL_CALL_CONVERSATION}),
    ],
    "qwen2.5-instruct": [
        ("tools", {"messages": CONVERSATIONS["system-multi-turn"], "tools": [WEATHER_TOOL]}),
        ("tools-default-system", {"messages": CONVERSATIONS["single-user"], "tools": [WEATHER_TOOL]}),
        ("tool-call-and-result", {"messages": TOOL_CALL_CONVERSATION}),
    ],
    "mistral-7b-instruct-v0.3": [
        ("tools", {"messages": CONVERSATIONS["multi-turn"], "tools": [WEATHER_TOOL]}),
        ("tool-call-and-result", {"messages": TOOL_CALL_CONVERSATION}),
    ],
}


def template_cases():
    cases = []
    for path in sorted((HERE / "templates").glob("*.jinja")):
        name = path.stem
        source = path.read_text(encoding="utf-8")
        bos, eos = TOKENS[name]
        runs = [(conv, {"messages": msgs}) for conv, msgs in CONVERSATIONS.items()]
        runs += EXTRA.get(name, [])
        for case, variables in runs:
            for agp in (True, False):
                context = {"tools": None, "documents": None, "add_generation_prompt": agp,
                           "bos_token": bos, "eos_token": eos}
                context.update(variables)
                out, err = render(source, context)
                entry = {"name": f"{name}/{case}/{'gen' if agp else 'nogen'}", "template": path.name,
                         "add_generation_prompt": agp, "bos_token": bos, "eos_token": eos,
                         "variables": variables}
                if err is None:
                    entry["expected"] = out
                else:
                    entry["error"] = err
                cases.append(entry)
    return cases


# (name, template, variables): one engine feature each.
ENGINE = [
    ("text", "plain text", {}),
    ("output", "a{{ x }}b", {"x": "X"}),
    ("undefined prints nothing", "[{{ missing }}]", {}),
    ("none and bools", "{{ none }} {{ true }} {{ false }} {{ None }} {{ True }}", {}),
    ("integers", "{{ 1 + 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 * 3 - 1 }} {{ 2 ** 10 }} {{ -2 ** 2 }}", {}),
    ("floats", "{{ 1.5 + 1 }} {{ 10 / 4 }} {{ 1 / 3 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e15 }} {{ 2 ** -1 }} {{ 1.0 }} {{ 1e-5 }} {{ 7.5 // 2 }}", {}),
    ("string literals", "{{ 'a\\nb\\t\"c\"' }}|{{ \"it's\" }}|{{ 'x' 'y' }}|{{ '\\u00e9\\x41\\\\' }}|{{ 'back\\slash' }}", {}),
    ("concat", "{{ 'n=' ~ 3 ~ none ~ missing ~ [1] }}", {}),
    ("string repeat", "{{ 'ab' * 3 }}{{ 2 * 'c' }}", {}),
    ("list and dict printing", "{{ [1, 'a', None, True, 1.5, \"it's\"] }} {{ {'k': [1, {'n': none}]} }} {{ (1,) }} {{ (1, 2) }}", {}),
    ("comment", "a{# gone #}b{#- trimmed -#}  c", {}),
    ("trim_blocks", "{% if true %}\nx\n{% endif %}\ny", {}),
    ("lstrip_blocks", "a\n    {% if true %}\n    b\n    {% endif %}\nc", {}),
    ("lstrip only at line start", "a {% if true %}b{% endif %}\n c", {}),
    ("minus trims", "a   {{- 'b' -}}   c  {%- if true -%}  d  {%- endif %}", {}),
    ("plus keeps", "a\n  {%+ if true %}b{% endif +%}\nc", {}),
    ("variable tags do not trim", "{{ 'a' }}\n{{ 'b' }}\n", {}),
    ("comment line", "x\n  {# note #}\ny", {}),
    ("raw", "{% raw %}{{ not evaluated }}{% endraw %}|{%- raw -%}  x  {%- endraw -%}  |", {}),
    ("trailing newline dropped", "a\n", {}),
    ("crlf normalised", "a\r\nb{% if true %}\r\nc{% endif %}", {}),
    ("if elif else", "{% for n in [1, 2, 3] %}{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %},{% endfor %}", {}),
    ("loop variables", "{% for x in items %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}", {"items": ["a", "b", "c"]}),
    ("loop cycle", "{% for i in range(5) %}{{ loop.cycle('x', 'y') }}{% endfor %}", {}),
    ("for else", "{% for x in [] %}x{% else %}empty{% endfor %}", {}),
    ("for with condition", "{% for x in [1, 2, 3, 4] if x % 2 == 0 %}{{ loop.index }}:{{ x }}{% if not loop.last %},{% endif %}{% endfor %}", {}),
    ("for over dict items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}", {"d": {"z": 1, "a": "b"}}),
    ("for over string", "{% for c in 'héllo' %}[{{ c }}]{% endfor %}", {}),
    ("break continue", "{% for n in [1, 2, 3, 4, 5] %}{% if n == 2 %}{% continue %}{% endif %}{% if n == 4 %}{% break %}{% endif %}{{ n }}{% endfor %}", {}),
    ("nested loops", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }}{% endfor %}{{ loop.index }} {% endfor %}", {}),
    ("loop scope", "{% set a = 1 %}{% for x in [1, 2] %}{{ a }}{% set a = x + 10 %}{{ a }}{% endfor %}|{{ a }}", {}),
    ("if does not scope", "{% if true %}{% set b = 3 %}{% endif %}{{ b }}", {}),
    ("namespace", "{% set ns = namespace(total=0, seen=false) %}{% for x in [1, 2, 3] %}{% set ns.total = ns.total + x %}{% if x == 2 %}{% set ns.seen = true %}{% endif %}{% endfor %}{{ ns.total }} {{ ns.seen }}", {}),
    ("namespace added attribute", "{% set ns = namespace() %}{% set ns.a = 'x' %}{{ ns.a }}", {}),
    ("set tuple", "{% set a, b = [1, 2] %}{{ b }}{{ a }}", {}),
    ("set block", "{% set x %}hello {{ 'world' }}{% endset %}[{{ x }}]{% set y | upper %}shout{% endset %}{{ y }}", {}),
    ("with", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }} {{ greet(name='Cy') }}", {}),
    ("macro sees later globals", "{% macro m() %}{{ y }}{% endmacro %}{% set y = 5 %}{{ m() }}", {}),
    ("macro call block", "{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inner{% endcall %}", {}),
    ("filter block", "{% filter upper %}abc {{ 'd' }}{% endfilter %}", {}),
    ("comparisons", "{{ 1 < 2 }}{{ 2 <= 1 }}{{ 'a' == 'a' }}{{ 'a' != 'a' }}{{ 3 > 2 }}{{ 1 >= 1 }}{{ 1 == 1.0 }}{{ 1 < 2 < 3 }}{{ 1 < 3 < 2 }}{{ [1, 2] < [1, 3] }}", {}),
    ("logic values", "{{ true and false }}{{ true or false }}{{ not true }}{{ not (1 == 2) }}{{ 0 or 'x' }}{{ '' and 'y' }}{{ 'a' and 'b' }}", {}),
    ("in", "{{ 'b' in 'abc' }}{{ 2 in [1, 2] }}{{ 'k' in d }}{{ 'q' not in d }}{{ 'x' in missing }}", {"d": {"k": 1}}),
    ("conditional expression", "{{ 'yes' if flag else 'no' }}[{{ 'a' if false }}]{{ 'p' if false else 'q' if true else 'r' }}", {"flag": True}),
    ("attribute and item access", "{{ d.a }}{{ d['a'] }}{{ l[0] }}{{ l[-1] }}{{ l.1 }}{{ d.missing }}{{ l[10] }}", {"d": {"a": "A"}, "l": [1, 2, 3]}),
    ("dict methods shadow keys", "{{ d.items is defined }}{{ d['items'] }}{{ d.get('items') }}{{ d.get('zz', 'dflt') }}{{ d.get('zz') }}", {"d": {"items": "I"}}),
    ("slices", "{{ l[1:] }}{{ l[:-1] }}{{ l[::-1] }}{{ l[::2] }}{{ 'abcdef'[1:5:2] }}{{ 'héllo'[1:3] }}{{ l[5:] }}{{ l[-100:1] }}", {"l": [1, 2, 3, 4]}),
    ("tests", "{{ x is defined }}{{ y is defined }}{{ y is not defined }}{{ y is undefined }}{{ n is none }}{{ s is string }}{{ 3 is number }}{{ 3.0 is float }}{{ 3 is integer }}{{ true is boolean }}{{ d is mapping }}{{ l is iterable }}{{ s is iterable }}{{ l is sequence }}{{ 4 is even }}{{ 3 is odd }}{{ 9 is divisibleby 3 }}{{ 'a' is eq 'a' }}{{ 1 is equalto 2 }}{{ true is true }}{{ 0 is false }}{{ 'ab' is lower }}{{ 'AB' is upper }}{{ 2 is in [1, 2] }}{{ 1 is lt 2 }}{{ 2 is ge 3 }}", {"x": 1, "n": None, "s": "s", "d": {}, "l": [1]}),
    ("string methods", "{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  a'.lstrip() }}|{{ 'a  '.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a-b-c'.rsplit('-', 1) }}|{{ 'Hello'.startswith('He') }}{{ 'x.py'.endswith(('.js', '.py')) }}|{{ 'ab'.upper() }}{{ 'AB'.lower() }}{{ 'hello world'.title() }}{{ 'hELLO'.capitalize() }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ '{} and {x}'.format(1, x='y') }}|{{ ', '.join(['a', 'b']) }}|{{ 'abcb'.find('b') }}{{ 'abcb'.rfind('b') }}{{ 'abcb'.count('b') }}|{{ 'a\\nb\\r\\nc'.splitlines() }}|{{ '12'.isdigit() }}{{ 'ab'.isalpha() }}{{ ' '.isspace() }}", {}),
    ("unicode strip and case", "[{{ '\\u3000 x \\xa0'.strip() }}][{{ 'ÉCOLE'.lower() }}][{{ 'straße'|upper }}][{{ 'привет'|capitalize }}]", {}),
    ("filters text", "{{ '  hi  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'hello'|upper }}|{{ 'HeLLo'|lower }}|{{ 'hello world'|capitalize }}|{{ 'a-b c(d [e'|title }}|{{ 'aXbX'|replace('X', '-') }}|{{ 'aaa'|replace('a', 'b', 1) }}|{{ 'ab'|center(7) }}|{{ 'one two  three'|wordcount }}|{{ '<a href=\"x\">&\\''|e }}|{{ 'x'|safe }}", {}),
    ("filters lists", "{{ [3, 1, 2]|sort }}{{ [3, 1, 2]|sort(reverse=true) }}{{ ['b', 'A', 'a']|sort }}{{ ['b', 'A', 'a']|unique|list }}{{ [1, 2]|first }}{{ [1, 2]|last }}{{ [1, 2, 3]|length }}{{ [1, 2, 3]|sum }}{{ [1, 2, 3]|max }}{{ [4, 2, 3]|min }}{{ 'abc'|list }}{{ [1, 2]|reverse|list }}{{ 'abc'|reverse }}{{ [1, 2, 3]|join('-') }}{{ [1, 2, 3, 4, 5]|batch(2)|list }}", {}),
    ("filters dicts", "{{ d|dictsort }}{{ d|dictsort(by='value') }}{{ d|items|list }}{{ d|length }}{{ d|list }}", {"d": {"b": 2, "a": 3, "C": 1}}),
    ("select and map", "{{ [0, 1, '', None, 'a']|select|list }}{{ [1, 2, 3, 4]|reject('odd')|list }}{{ [1, 2, 3]|select('gt', 1)|list }}{{ msgs|selectattr('role', 'equalto', 'user')|list|length }}{{ msgs|rejectattr('role', '==', 'user')|map(attribute='content')|list }}{{ msgs|map(attribute='role')|join(',') }}{{ [1, 2]|map('string')|list }}{{ msgs|selectattr('content')|list|length }}{{ msgs|sort(attribute='role')|map(attribute='role')|list }}", {"msgs": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "c"}]}),
    ("default", "{{ x|default('d') }}{{ ''|default('d') }}{{ ''|default('d', true) }}{{ none|default('n') }}{{ y|d('yy') }}", {"y": 0}),
    ("conversions", "{{ '42'|int }}{{ 3.9|int }}{{ 'x'|int }}{{ 'x'|int(7) }}{{ '0x1A'|int(0, 16) }}{{ 1|float }}{{ '3.5'|float }}{{ 12|string }}{{ none|string }}{{ [1]|string }}{{ -3|abs }}{{ 2.5|round }}{{ 3.14159|round(2) }}{{ 2.1|round(0, 'ceil') }}", {}),
    ("indent", "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(1, blank=true) }}|{{ 'a\\nb\\n'|indent('> ') }}", {}),
    ("tojson", "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ 'é\"\\n<'|tojson }}|{{ [1, 2.5, none, true]|tojson }}|{{ {}|tojson(indent=4) }}|{{ d|tojson(sort_keys=true) }}|{{ d|tojson(separators=(',', ':')) }}|{{ 'é'|tojson(ensure_ascii=true) }}", {"d": {"z": [1, {"y": "x"}], "a": None, "n": 1.0}}),
    ("tojson of message content", "{{ m|tojson }}", {"m": {"role": "tool", "content": "{\"a\": 1}"}}),
    ("percent format", "{{ '%s-%d' % ('a', 3) }}|{{ '%05.1f' % 3.14159 }}|{{ '%-4s|' % 'x' }}|{{ '%x' % 255 }}|{{ '100%%' % () }}|{{ '%s'|format('f') }}", {}),
    ("range", "{{ range(3)|list }}{{ range(1, 10, 3)|list }}{{ range(5, 0, -2)|list }}{{ range(0)|list }}", {}),
    ("dict and namespace constructors", "{{ dict(a=1, b='x') }}{% set n = namespace({'k': 'v'}, z=1) %}{{ n.k }}{{ n.z }}", {}),
    ("strftime_now", "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S') }}|{{ strftime_now('%A %B %-d') }}", {}),
    ("builtins defined", "{{ strftime_now is defined }}{{ raise_exception is defined }}{{ range is defined }}{{ namespace is defined }}{{ nothing is defined }}", {}),
    ("chained filters and precedence", "{{ '  A ' | trim | lower + '!' }}{{ 'x' ~ 'Y'|lower }}{{ -3|abs }}{{ not 1 == 2 }}{{ 1 + 2 * 3 ** 2 }}", {}),
    ("dict literal in output", "{{ {'a': {'b': 1}} }}{{ {'a': 1}['a'] }}", {}),
    ("messages idioms", "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set sys = messages[0].content|trim %}{% else %}{% set loop_messages = messages %}{% endif %}{{ sys }}|{% for m in loop_messages %}{{ m.role }}:{{ m['content'] }}{{ '|' if not loop.last }}{% endfor %}", {"messages": [{"role": "system", "content": " S "}, {"role": "user", "content": "U"}]}),
    ("content parts", "{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}{% for p in m.content %}{% if p.type == 'text' %}{{ p.text }}{% endif %}{% endfor %}{% endif %}{% endfor %}", {"messages": [{"role": "user", "content": [{"type": "text", "text": "A"}, {"type": "image"}, {"type": "text", "text": "B"}]}, {"role": "user", "content": "C"}]}),
    ("think split", "{% set c = 'x<think>\\nr\\n</think>\\n\\nans' %}{{ c.split('</think>')[-1].lstrip('\\n') }}|{{ c.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}", {}),
    # Errors: Jinja raises; the engine must fail cleanly too.
    ("error raise_exception", "{{ raise_exception('Only user and assistant roles are supported!') }}", {}),
    ("error undefined attribute", "{{ missing.attr }}", {}),
    ("error undefined arithmetic", "{{ missing + 1 }}", {}),
    ("error attribute of missing key", "{{ d.missing.x }}", {"d": {}}),
    ("error string plus int", "{{ 'a' + 1 }}", {}),
    ("error division by zero", "{{ 1 / 0 }}", {}),
    ("error not iterable", "{% for x in 3 %}{% endfor %}", {}),
    ("error list append", "{% set l = [1] %}{{ l.append(2) }}", {}),
    ("error dict update", "{% set d = {} %}{{ d.update({'a': 1}) }}", {}),
    ("error set attribute on dict", "{% set d = {'a': 1} %}{% set d.a = 2 %}{{ d.a }}", {}),
    ("error call non-callable", "{{ 'abc'() }}", {}),
    ("error tojson undefined", "{{ missing|tojson }}", {}),
]

# Templates Jinja refuses to compile; the engine must refuse them too.
SYNTAX_ERRORS = [
    ("unclosed block", "{% if true %}x"),
    ("unclosed output", "{{ x "),
    ("unknown tag", "{% frobnicate %}"),
    ("endfor without for", "{% endfor %}"),
    ("break outside loop", "{% break %}"),
    ("unbalanced brackets", "{{ [1, 2 }}"),
    ("unterminated string", "{{ 'abc }}"),
    ("unclosed comment", "{# never closed"),
    ("bad operator", "{{ 1 +* 2 }}"),
    ("do is not enabled", "{% do x %}"),
]


def engine_cases():
    cases = []
    for name, source, variables in ENGINE:
        out, err = render(source, dict(variables))
        entry = {"name": name, "source": source, "variables": variables}
        if err is None:
            entry["expected"] = out
        else:
            entry["error"] = err
        cases.append(entry)
    syntax = []
    for name, source in SYNTAX_ERRORS:
        try:
            ENV.from_string(source)
        except (jinja2.exceptions.TemplateSyntaxError, SyntaxError) as e:  # break outside a loop fails in Python compile
            syntax.append({"name": name, "source": source, "error": str(e)})
            continue
        raise SystemExit(f"expected a syntax error from Jinja for {name!r}")
    return cases, syntax


def main():
    (HERE / "templates.json").write_text(
        json.dumps({"jinja2_version": jinja2.__version__, "cases": template_cases()}, ensure_ascii=False, indent=1) + "\n",
        encoding="utf-8")
    cases, syntax = engine_cases()
    (HERE / "engine.json").write_text(
        json.dumps({"jinja2_version": jinja2.__version__, "now": PINNED_NOW.isoformat(), "cases": cases,
                    "syntax_errors": syntax}, ensure_ascii=False, indent=1) + "\n",
        encoding="utf-8")


if __name__ == "__main__":
    main()
