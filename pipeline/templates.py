"""Prompt templates: Jinja2 in a sandbox, with StrictUndefined (a missing variable is an error).

The sandbox matters: the pull-request gate renders templates from forks, and a template must
never be able to reach Python internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
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
from jinja2.sandbox import SandboxedEnvironment

from pipeline.errors import ConfigError


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False
    )


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    """Compiling costs ~0.3 ms a template; a run renders the same few sources many times."""
    return environment().from_string(source)


def render(source: str, variables: Mapping[str, Any]) -> str:
    try:
        return _compiled(source).render(**variables).strip()
    except UndefinedError as e:
        raise ConfigError(f"prompt template: {e.message}") from e
    except TemplateSyntaxError as e:
        raise ConfigError(f"prompt template line {e.lineno}: {e.message}") from e
    except TemplateError as e:  # SecurityError from the sandbox, and the rest
        raise ConfigError(f"prompt template: {e.message}") from e


def variables_used(source: str) -> dict[str, int]:
    """Variables a template requires, each with the first line it appears on.

    A variable the template guards (``{% if x is defined %}``, ``{{ x | default('') }}``) is
    optional and not listed. Raises TemplateSyntaxError for a template that does not parse.
    """
    env = environment()
    ast = env.parse(source)
    names = meta.find_undeclared_variables(ast) - _guarded(ast)
    lines: dict[str, int] = {}
    for node in ast.find_all(nodes.Name):
        if node.name in names and node.name not in lines:
            lines[node.name] = node.lineno
    return {name: lines.get(name, 1) for name in sorted(names)}


def _guarded(ast: nodes.Template) -> set[str]:
    guarded: set[str] = set()
    for test in ast.find_all(nodes.Test):
        if test.name in ("defined", "undefined", "none") and isinstance(test.node, nodes.Name):
            guarded.add(test.node.name)
    for flt in ast.find_all(nodes.Filter):
        if flt.name in ("default", "d") and isinstance(flt.node, nodes.Name):
            guarded.add(flt.node.name)
    return guarded
