"""Prompt templates: Jinja2 in a bounded sandbox, with StrictUndefined (a missing variable is an
error).

The sandbox matters: the pull-request gate renders templates from forks, and a template must
never be able to reach Python internals, read other files, or take the machine's memory or time
(``pipeline.sandbox`` has the limits). A prompt is one self-contained file: ``include``,
``import`` and ``extends`` are refused where they are written, when the template is parsed.

A prompt with no template syntax at all (no ``{{``, ``{%`` or ``{#``) is plain text: it renders
to itself exactly as Jinja2 renders it (line ends made ``\\n``, then stripped), uses no
variables and is rendered here without Jinja2, whose import and compile cost ~20 ms: a warm
``eval`` of plain prompts never imports it. Everything else goes to
:mod:`pipeline.jinjatemplates`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipeline.templatelimits import MAX_CHARS, ONE_FILE_HINT, TemplateProblem

if TYPE_CHECKING:
    from jinja2 import nodes

    from pipeline.sandbox import BoundedSandbox

__all__ = [
    "ONE_FILE_HINT",
    "TemplateProblem",
    "environment",
    "parse",
    "plain",
    "render",
    "render_metered",
    "variables_used",
]

# What starts a block, an expression or a comment (the sandbox sets no line statements).
_SYNTAX = ("{{", "{%", "{#")


def plain(source: str) -> str | None:
    """What ``source`` renders to when it has no template syntax (Jinja2 turns ``\\r\\n`` and
    ``\\r`` into ``\\n``; a render is stripped), else None. A text over the sandbox's size limit
    is None too, so that Jinja2 reports the limit on its line."""
    if len(source) > MAX_CHARS or any(mark in source for mark in _SYNTAX):
        return None
    return source.replace("\r\n", "\n").replace("\r", "\n").strip()


def environment() -> BoundedSandbox:
    """The one sandboxed Jinja2 environment every prompt renders in."""
    from pipeline import jinjatemplates

    return jinjatemplates.environment()


def parse(source: str) -> nodes.Template:
    """The template's syntax tree. Raises TemplateSyntaxError, also for what a prompt may not do
    (include, import, extends), on the line where it is written."""
    from pipeline import jinjatemplates

    return jinjatemplates.parse(source)


def render(source: str, variables: Mapping[str, Any]) -> str:
    """The rendered prompt, stripped. Raises TemplateProblem (a ConfigError) when the template
    does not parse, misses a variable, fails, or goes past a limit of the sandbox."""
    return render_metered(source, variables)[0]


def render_metered(source: str, variables: Mapping[str, Any]) -> tuple[str, int]:
    """``render``, and the units of work the render took (none for plain text)."""
    text = plain(source)
    if text is not None:
        return text, 0
    from pipeline import jinjatemplates

    return jinjatemplates.render_metered(source, variables)


def variables_used(source: str) -> dict[str, int]:
    """Variables a template requires, each with the first line it appears on.

    A variable the template guards (``{% if x is defined %}``, ``{{ x | default('') }}``) is
    optional and not listed. Raises TemplateSyntaxError for a template that does not parse or
    does what a prompt may not.
    """
    if plain(source) is not None:
        return {}
    from pipeline import jinjatemplates

    return jinjatemplates.variables_used(source)
