"""A reporter turns a command's outcome into text: one reporter per format.

A reporter is a plain function ``outcome -> Rendered``: what goes to stdout (the data: JSON,
workflow annotations, a report meant to be piped) and what goes to stderr (diagnostics for a
person). Each command's reporters sit in a table by format name (``--format``); the command
line picks one and prints what it returns. Reporters never run git, read files or print.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.outcome import Outcome

T = TypeVar("T", contravariant=True)


@dataclass(frozen=True, slots=True)
class Rendered:
    """Text for stdout (``out``) and for stderr (``err``), each complete with its newlines."""

    out: str = ""
    err: str = ""

    def __add__(self, other: Rendered) -> Rendered:
        return Rendered(self.out + other.out, self.err + other.err)


Reporter = Callable[[T], Rendered]  # one format of one command's outcome


def block(items: list[str]) -> str:
    """Lines joined, each ending with a newline ("" for none)."""
    return "".join(f"{item}\n" for item in items)


def json_text(found: Any) -> str:
    """``found`` (one value with ``to_json()``, or a list of them) as indented JSON."""
    data = [x.to_json() for x in found] if isinstance(found, list) else found.to_json()
    return json.dumps(data, indent=2, ensure_ascii=False)


def json_reporter(**dumps: Any) -> Callable[[Outcome], Rendered]:
    """The ``json`` format: the outcome's ``to_json()`` on stdout (``dumps``: json.dumps options)."""
    options = {"indent": 2, **dumps}

    def render(outcome: Outcome) -> Rendered:
        return Rendered(out=json.dumps(outcome.to_json(), **options) + "\n")

    return render
