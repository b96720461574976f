"""The report's pages from Jinja2 templates shipped in the package (``pipeline/site/templates``):
autoescaped, StrictUndefined, one stylesheet inlined in every page, no script, no link."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from pipeline.site.views import day


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("pipeline.site", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["day"] = lambda at: day(str(at)) if at else "—"
    env.filters["seconds"] = _seconds
    env.filters["duration"] = _duration
    env.filters["pct"] = lambda v: "—" if v is None else f"{v:g}%"
    return env


def _seconds(value: Any) -> str:
    return "—" if not isinstance(value, int | float) else f"{value:g} s"


def _duration(value: Any) -> str:
    """Seconds as a person reads them: 95 s, 12.5 min, 2.1 h."""
    if not isinstance(value, int | float):
        return "—"
    if value < 120:
        return f"{value:g} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def render_agent(context: dict[str, Any]) -> str:
    return _environment().get_template("agent.html.j2").render(**context)


def render_index(context: dict[str, Any]) -> str:
    return _environment().get_template("index.html.j2").render(**context)
