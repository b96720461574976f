"""Eval progress on stderr: a live bar on a terminal, one plain line per finished case elsewhere.

The command line makes one of these and passes it down to the core as the ``progress`` of
:func:`pipeline.evals.session.run_targets`; the core only calls it and never imports a reporter.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.evals.results import CaseResult


def plain_progress() -> bool:
    """Progress is one plain line per case (CI, pipes) rather than a live bar (a terminal)."""
    return not (sys.stderr.isatty() and not os.environ.get("CI"))


class CaseProgress:
    """A rich progress bar on a TTY; one plain line per finished case in CI (or when piped).

    Entered once per eval run (a command may run several: the gate evaluates HEAD and BASE),
    told each finished case through :meth:`update`.
    """

    def __init__(self) -> None:
        self.tty = not plain_progress()
        self._bar: Any = None
        self._task: Any = None
        self.done = 0

    def __enter__(self) -> CaseProgress:
        return self

    def _start_bar(self) -> None:
        """The live bar, from the first finished case on: its refresh thread must not exist
        while the run forks its lanes (pipeline.evals.lanes)."""
        if self.tty and self._bar is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]eval"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("", total=None)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def update(self, case: CaseResult) -> None:
        from pipeline.report.evals import line, quiet_skip

        self.done += 1
        self._start_bar()
        if self._bar is not None:
            self._bar.update(
                self._task, advance=1, description=f"{case.agent}/{case.case} [{case.provider}]"
            )
        elif not quiet_skip(case):
            print(line(case), file=sys.stderr, flush=True)
