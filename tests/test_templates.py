"""Prompt templates render in a bounded sandbox: what a template may compute is limited, what it
may not do is refused, and every failure names the template line -- in bounded time."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from repoutil import repo_files, write_repo

from pipeline import sandbox
from pipeline.templates import TemplateProblem, render, variables_used

VARS: dict[str, Any] = {
    "company": "Acme",
    "items": ["tea", "cake"],
    "user": {"name": "Ann", "tier": 2},
    "price": 12.5,
}

ORDINARY = [
    "You work for {{ company }}.",
    "{% for item in items %}{{ loop.index }}. {{ item|title }}\n{% endfor %}",
    "{% for item in items if item != 'tea' %}{{ item }}{% else %}none{% endfor %}",
    "{{ user.name }} ({{ user['tier'] }}) {{ user.get('missing', '-') }}",
    "{% for k, v in user|dictsort %}{{ k }}={{ v }};{% endfor %}",
    "{{ items|join(', ') }} / {{ items|map('upper')|join('+') }} / {{ items|length }}",
    "{{ '%s costs %.2f' % (company, price) }} {{ '{} and {}'.format(*items) }}",
    "{{ company ~ '!' }} {{ company * 2 }} {{ items + ['pie'] }} {{ 2 ** 10 }}",
    "{{ company.upper() }} {{ company|lower|center(12) }}|{{ company.ljust(8) }}|",
    "{% macro row(x) %}<{{ x }}>{% endmacro %}{% for i in items %}{{ row(i) }}{% endfor %}",
    "{% set ns = namespace(n=0) %}{% for i in range(10) %}{% set ns.n = ns.n + i %}{% endfor %}"
    "{{ ns.n }}",
    "{% if user.tier > 1 %}gold{% elif user.tier %}silver{% else %}none{% endif %}",
    "{{ items|first }} {{ items|last }} {{ items|reverse|list }} {{ [3, 1, 2]|sort }}",
    "{{ user|tojson }} {{ 'a\nb'|indent(2) }} {{ 'x y z'|wordcount }} {{ price|round }}",
    "{{ missing|default('n/a') }} {% if missing is defined %}x{% endif %}",
    "{% filter upper %}shout {{ company }}{% endfilter %}",
    "{% for row in items|batch(1) %}{{ row }}{% endfor %} {{ cycler('a', 'b').next() }}",
]


@pytest.mark.parametrize("source", ORDINARY)
def test_ordinary_templates_render_as_jinja_renders_them(source: str) -> None:
    plain = SandboxedEnvironment(undefined=StrictUndefined).from_string(source)
    assert render(source, VARS) == plain.render(**VARS).strip()


HOSTILE: list[tuple[str, int, str]] = [
    ("a\n{{ 'x' * 1000000000 }}", 2, "more than 1,000,000 characters"),
    ("a\n{{ [0] * 1000000000 }}", 2, "more than 1,000,000 items"),
    ("{% for i in range(100000000) %}{% endfor %}", 1, "range() of 100,000,000 numbers"),
    (
        "{% for i in range(100000) %}\n{% for j in range(100000) %}{% endfor %}\n{% endfor %}",
        2,
        "steps",
    ),
    (
        "{% for i in range(100000) %}{% for j in range(99999) if j < 0 %}{% endfor %}{% endfor %}",
        1,
        "steps",
    ),
    (
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
        1,
        "steps",
    ),
    (
        "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}\n{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        2,
        "more than 1,000,000 characters",
    ),
    (
        "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}\n{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}",
        2,
        "more than 1,000,000 characters",
    ),
    ("{% for i in range(100000) %}\n" + "x" * 100 + "{% endfor %}", 1, "more than 1,000,000"),
    # output that piles up in a buffer (a macro's, a filter block's, a set block's, a caller's)
    (
        "{% macro m() %}{% for i in range(100000) %}" + "x" * 1000 + "{% endfor %}{% endmacro %}"
        "{{ m()|length }}",
        1,
        "steps",
    ),
    (
        "{% filter upper %}{% for i in range(100000) %}"
        + "x" * 1000
        + "{% endfor %}{% endfilter %}",
        1,
        "steps",
    ),
    (
        "{% set big = 'y' * 1000000 %}{% set x %}{% for i in range(100000) %}{{ big }}{% endfor %}"
        "{% endset %}{{ x|length }}",
        1,
        "steps",
    ),
    (
        "{% macro w() %}{{ caller() }}{% endmacro %}{% call w() %}{% for i in range(100000) %}"
        + "x" * 1000
        + "{% endfor %}{% endcall %}",
        1,
        "steps",
    ),
    ("{{ 10 ** 1000000000 }}", 1, "too large"),
    ("{% set n = 2 ** 4000 %}{{ n * n }}", 1, "too large"),
    ("{{ '%1000000000s' % company }}", 1, "more than 1,000,000 characters"),
    ("{{ '%*s' % (1000000000, company) }}", 1, "more than 1,000,000 characters"),
    ("{{ '%1000000000s'|format(company) }}", 1, "more than 1,000,000 characters"),
    ("{{ '{:>1000000000}'.format(company) }}", 1, "more than 1,000,000 characters"),
    ("{{ '{:{w}}'.format(company, w=1000000000) }}", 1, "not allowed"),
    ("{{ company|center(1000000000) }}", 1, "more than 1,000,000 characters"),
    ("{{ company.ljust(1000000000) }}", 1, "more than 1,000,000 characters"),
    ("{{ company.zfill(1000000000) }}", 1, "more than 1,000,000 characters"),
    ("{% set s = 'x' * 100000 %}{{ s.replace('', s) }}", 1, "more than 1,000,000 characters"),
    ("{% set s = 'x' * 100000 %}{{ s|replace('', s) }}", 1, "more than 1,000,000 characters"),
    ("{% set s = 'x' * 100000 %}{{ s.join(range(100000)|map('string')) }}", 1, "more than"),
    ("{% set s = 'x' * 100000 %}{{ range(100000)|join(s) }}", 1, "more than"),
    ("{% set s = '\\t' * 100000 %}{{ s.expandtabs(100000) }}", 1, "more than"),
    ("{{ ('\\n' * 100000)|indent(100000) }}", 1, "more than 1,000,000 characters"),
    ("{{ items|batch(1000000000)|list }}", 1, "more than 1,000,000 items"),
    ("{{ items|slice(1000000000)|list }}", 1, "1,000,000,000 slices"),
    ("{{ (1).to_bytes(1000000000, 'big') }}", 1, "int.to_bytes() is not allowed"),
    ("{{ items.append(1) }}", 1, "unsafe"),
    ("{{ lipsum(1000000) }}", 1, "'lipsum' is undefined"),
    ("{{ items|random }}", 1, "No filter named 'random'"),
    ("a\n{% include 'x.md' %}", 2, "{% include %} is not allowed"),
    ("{% import 'm.md' as m %}", 1, "{% import %} is not allowed"),
    ("a\nb\n{% from 'm.md' import x %}", 3, "{% from ... import %} is not allowed"),
    ("{% extends 'base.md' %}", 1, "{% extends %} is not allowed"),
    ("a\n{{ nope }}", 2, "'nope' is undefined"),
    ("a\nb\n{{ company + 1 }}", 3, "TypeError"),
    ("{{ 1 / 0 }}", 1, "ZeroDivisionError"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", 1, "RecursionError"),
]


@pytest.mark.parametrize(("source", "line", "message"), HOSTILE)
def test_hostile_templates_fail_on_their_line_in_bounded_time(
    source: str, line: int, message: str
) -> None:
    start = time.monotonic()
    with pytest.raises(TemplateProblem) as caught:
        render(source, VARS)
    assert time.monotonic() - start < sandbox.MAX_SECONDS
    assert message in caught.value.reason
    assert caught.value.line == line
    assert str(caught.value).startswith(f"prompt template line {line}: ")


@pytest.mark.parametrize("tag", ["include 'x.md'", "import 'x.md' as x", "extends 'x.md'"])
def test_validate_refuses_what_a_prompt_may_not_do_when_it_parses(tag: str) -> None:
    from jinja2 import TemplateSyntaxError

    with pytest.raises(TemplateSyntaxError) as caught:
        variables_used("Hi {{ name }}\n{% " + tag + " %}")
    assert caught.value.lineno == 2


def test_a_template_cannot_rebind_the_step_counter() -> None:
    source = (
        "{% set knowngood_step = none %}{% set environment = none %}"
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    )
    with pytest.raises(TemplateProblem, match="steps"):
        render(source, {})


def test_renders_do_not_share_a_budget() -> None:
    source = "{% for i in range(90000) %}{% endfor %}{{ company }}"
    for _ in range(20):  # 20 x 90,000 iterations: over the limit together, each well under it
        assert render(source, VARS) == "Acme"


def _plain_texts() -> list[str]:
    """Texts without template syntax, built from the characters that could make plain text
    render differently (line ends of every kind, braces, percent and hash signs, whitespace,
    Unicode line separators), plus a few prompts as people write them."""
    alphabet = ["a", " ", "\t", "\n", "\r", "\r\n", "{", "}", "%", "#", "-", "é", "\u2028", "\x0c"]
    rng = random.Random(13)
    texts = ["", "\n", "You are a helpful assistant.\n", 'Reply in JSON: {"ok": true}\r\n']
    texts += ["100% sure # not a comment } {", "Line one\r\nLine two\rLine three\n\n\n"]
    for _ in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        if not any(mark in text for mark in ("{{", "{%", "{#")):
            texts.append(text)
    return texts


def test_plain_text_renders_without_jinja_exactly_as_jinja_renders_it() -> None:
    """A prompt with no template syntax takes the fast path; what it renders to and the
    variables it uses are what the sandboxed Jinja2 path gives for the same text."""
    from pipeline import jinjatemplates
    from pipeline.templates import plain, render_metered

    texts = _plain_texts()
    assert len(texts) > 200
    for text in texts:
        assert plain(text) is not None, repr(text)
        assert render_metered(text, VARS) == jinjatemplates.render_metered(text, VARS), repr(text)
        assert variables_used(text) == jinjatemplates.variables_used(text) == {}, repr(text)
    for text in (
        "{{ x }}",
        "a {% if 1 %}b{% endif %}",
        "{# note #}",
        "x" * (sandbox.MAX_CHARS + 1),
    ):
        assert plain(text) is None


def test_an_eval_of_plain_prompts_never_imports_jinja(tmp_path: Path) -> None:
    """Validating and rendering plain prompts happens without Jinja2 (its import is ~20 ms of a
    warm eval); a prompt with syntax still gets the sandbox."""
    files = repo_files(("shop",))
    prompts = [rel for rel in files if rel.startswith("agents/shop/prompts/")]
    assert prompts
    for rel in prompts:
        files[rel] = "You are a plain assistant.\r\nAnswer briefly: 100% {sure}.\n"
    root = write_repo(tmp_path / "repo", files)
    script = (
        "import sys\nfrom pipeline.cli import main\n"
        f"code = main(['validate', '--repo', {str(root)!r}])\n"
        "print('jinja2' in sys.modules)\nsys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
