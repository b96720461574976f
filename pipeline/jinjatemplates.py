"""The Jinja2 half of :mod:`pipeline.templates`: parsing, the refused statements, compiling and
rendering in the bounded sandbox (:mod:`pipeline.sandbox`). Imported only for a prompt that has
template syntax; use it through :mod:`pipeline.templates`."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from functools import lru_cache
from types import TracebackType
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
)

from pipeline import sandbox
from pipeline.templatelimits import ONE_FILE_HINT, TemplateProblem

_REFUSED: dict[type[nodes.Node], str] = {
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from ... import",
    nodes.Extends: "extends",
}


@lru_cache(maxsize=1)
def environment() -> sandbox.BoundedSandbox:
    return sandbox.BoundedSandbox(
        undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False
    )


def parse(source: str) -> nodes.Template:
    """The template's syntax tree. Raises TemplateSyntaxError, also for what a prompt may not do
    (include, import, extends), on the line where it is written."""
    ast = environment().parse(source)
    for kind, what in _REFUSED.items():
        for node in ast.find_all(kind):
            raise TemplateSyntaxError(f"{{% {what} %}} is not allowed in a prompt", node.lineno)
    return ast


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    """Compiling costs ~0.3 ms a template; a run renders the same few sources many times."""
    env = environment()
    return env.from_string(sandbox.instrument(parse(source), env))


def render_metered(source: str, variables: Mapping[str, Any]) -> tuple[str, int]:
    """The rendered prompt, stripped, and the units of work the render took. Raises
    TemplateProblem (a ConfigError) when the template does not parse, misses a variable, fails,
    or goes past a limit of the sandbox."""
    try:
        template = _compiled(source)
    except TemplateSyntaxError as e:
        raise TemplateProblem(e.message or "syntax error", e.lineno, hint=_hint(e)) from e
    token, budget = sandbox.begin()
    try:
        return _generate(template, variables).strip(), budget.work
    except UndefinedError as e:
        raise TemplateProblem(e.message or "undefined variable", _line(e)) from e
    except TemplateError as e:  # SecurityError and LimitExceeded from the sandbox, and the rest
        raise TemplateProblem(e.message or type(e).__name__, _line(e), hint=_hint(e)) from e
    except (ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as e:
        raise TemplateProblem(f"{type(e).__name__}: {e}", _line(e)) from e
    finally:
        sandbox.end(token)


def _generate(template: Template, variables: Mapping[str, Any]) -> str:
    """Render piece by piece, so literal text repeated by a loop cannot pass MAX_CHARS either:
    the limit is raised inside the template, where its line is known."""
    parts: list[str] = []
    size = 0
    stream: Generator[str, None, None] = template.generate(**variables)  # type: ignore[assignment]
    for part in stream:
        size += len(part)
        if size > sandbox.MAX_CHARS:
            stream.throw(
                sandbox.LimitExceeded(
                    f"the prompt would be more than {sandbox.MAX_CHARS:,} characters"
                )
            )
        parts.append(part)
    return "".join(parts)


def _line(error: BaseException) -> int | None:
    """The template line an exception was raised on: Jinja2 rewrites the traceback so that
    the template's frames carry its line numbers."""
    line = None
    tb: TracebackType | None = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _hint(error: TemplateError) -> str | None:
    if isinstance(error, TemplateSyntaxError) and "not allowed in a prompt" in (
        error.message or ""
    ):
        return ONE_FILE_HINT
    if isinstance(error, sandbox.LimitExceeded):
        return "a prompt template formats its variables: compute large or repeated text elsewhere"
    return None


def variables_used(source: str) -> dict[str, int]:
    """Variables a template requires, each with the first line it appears on.

    A variable the template guards (``{% if x is defined %}``, ``{{ x | default('') }}``) is
    optional and not listed. Raises TemplateSyntaxError for a template that does not parse or
    does what a prompt may not.
    """
    return dict(_variables_used(source))


@lru_cache(maxsize=256)
def _variables_used(source: str) -> tuple[tuple[str, int], ...]:
    """Parsing costs ~1 ms a prompt; validation and each environment's bundle ask again."""
    ast = parse(source)
    names = meta.find_undeclared_variables(ast) - _guarded(ast)
    lines: dict[str, int] = {}
    for node in ast.find_all(nodes.Name):
        if node.name in names and node.name not in lines:
            lines[node.name] = node.lineno
    return tuple((name, lines.get(name, 1)) for name in sorted(names))


def _guarded(ast: nodes.Template) -> set[str]:
    guarded: set[str] = set()
    for test in ast.find_all(nodes.Test):
        if test.name in ("defined", "undefined", "none") and isinstance(test.node, nodes.Name):
            guarded.add(test.node.name)
    for flt in ast.find_all(nodes.Filter):
        if flt.name in ("default", "d") and isinstance(flt.node, nodes.Name):
            guarded.add(flt.node.name)
    return guarded
