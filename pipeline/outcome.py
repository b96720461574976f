"""The shape every command shares: a request goes in, an :class:`Outcome` comes out.

Each command's core package has ``run(root, request) -> outcome``. The request is a plain
value the command line fills from its options; the outcome knows its exit code and its JSON.
The core never prints: what the user should see while it runs goes to the request's ``say``
(one line of diagnostics at a time: the revision it read, a warning, what it pushed), eval
progress to its ``progress``. A reporter (``pipeline.report``) turns the outcome into text.

Files a command writes in another format (``--junit``, ``--markdown``, a step summary) are
rendered by the reporters the command line passes down in the request (:class:`OutFile`), so
the core writes them without importing a reporter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")

Say = Callable[[str], None]  # one line of diagnostics for the user (stderr)


def silent(_line: str) -> None:
    """The ``say`` of a request nobody listens to (the Python API, tests)."""


class Outcome(Protocol):
    """What a command's core returns: its exit code and its JSON (``--format json``)."""

    @property
    def exit_code(self) -> int: ...

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class OutFile(Generic[T]):
    """A file the request asks for (``--output``, ``--junit``, ``--markdown``) and the reporter
    that renders the command's result into its bytes."""

    path: Path
    render: Callable[[T], bytes]
    option: str = ""  # the flag that named it (``--junit``), for messages
