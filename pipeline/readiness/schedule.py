"""Drills scheduled in the GitHub workflows: which ``knowngood drill KIND`` steps run on a cron,
and the longest gap between two runs over a year.

A step counts for KIND when its ``run`` calls ``knowngood drill KIND`` (through any path, e.g.
``.venv/bin/knowngood``; ``${{ matrix.NAME }}`` is expanded from the job's matrix, and so is an
environment variable, ``"$DRILL"``, that the step, job or workflow sets to a kind or to
``${{ matrix.NAME }}``, as zizmor has workflows pass expressions) in a workflow with
``on.schedule`` crons. A step or job whose ``if:`` compares ``github.event.schedule`` with
cron strings runs only on those. Cron fields: numbers, ``*``, ranges, steps, lists and names
(jan..dec, sun..sat); day-of-month and day-of-week both restricted means either (cron's rule).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pipeline.errors import KnowngoodError

# The seeds' schedule: rollback monthly; failover, crash and restore quarterly.
MAX_GAP_DAYS: dict[str, int] = {"rollback": 31, "failover": 92, "crash": 92, "restore": 92}
_DRILL = re.compile(
    r"knowngood\s+drill\s+(\$\{\{\s*matrix\.[\w-]+\s*\}\}|\"?\$\{?\w+\}?\"?|[a-z]+)"
)
_MATRIX = re.compile(r"\$\{\{\s*matrix\.([\w-]+)\s*\}\}")
_VARIABLE = re.compile(r"\"?\$\{?(\w+)\}?\"?")
_SCHEDULE_IF = re.compile(r"github\.event\.schedule\s*==\s*'([^']+)'")
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def scheduled_drills(workflows: Path) -> dict[str, list[tuple[str, str]]]:
    """kind -> [(workflow file, cron)] for every scheduled step that runs that drill."""
    from pipeline.loading import load

    found: dict[str, list[tuple[str, str]]] = {}
    if not workflows.is_dir():
        return found
    for path in sorted([*workflows.glob("*.yml"), *workflows.glob("*.yaml")]):
        doc, _ = load(path, path.name)
        if doc is None or not isinstance(doc.data, Mapping):
            continue
        crons = _crons(doc.data)
        if not crons:
            continue
        for kind, only in _drill_steps(doc.data):
            chosen = [c for c in crons if not only or c in only]
            for cron in chosen:
                found.setdefault(kind, []).append((f".github/workflows/{path.name}", cron))
    return found


def _crons(workflow: Mapping[Any, Any]) -> list[str]:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    if not isinstance(on, Mapping):
        return []
    entries = on.get("schedule") or []
    return [str(e["cron"]) for e in entries if isinstance(e, Mapping) and e.get("cron")]


def _drill_steps(workflow: Mapping[str, Any]) -> Iterator[tuple[str, set[str]]]:
    """(kind, crons it is limited to, or empty for all) per drill a step runs."""
    for job in (workflow.get("jobs") or {}).values():
        if not isinstance(job, Mapping):
            continue
        matrix = (job.get("strategy") or {}).get("matrix") or {}
        job_only = set(_SCHEDULE_IF.findall(str(job.get("if", ""))))
        for step in job.get("steps") or []:
            if not isinstance(step, Mapping) or not isinstance(step.get("run"), str):
                continue
            only = job_only | set(_SCHEDULE_IF.findall(str(step.get("if", ""))))
            env = {**_env(workflow), **_env(job), **_env(step)}
            for argument in _DRILL.findall(step["run"]):
                for kind in _kinds(argument, env, matrix):
                    yield kind, only


def _env(holder: Mapping[str, Any]) -> dict[str, str]:
    env = holder.get("env")
    return {str(k): str(v) for k, v in env.items()} if isinstance(env, Mapping) else {}


def _kinds(argument: str, env: Mapping[str, str], matrix: Mapping[str, Any]) -> list[str]:
    """The drill kinds ``knowngood drill ARGUMENT`` runs: a literal, a matrix axis, or an
    environment variable set to either (none when it cannot be read without running it)."""
    variable = _VARIABLE.fullmatch(argument)
    if variable is not None:
        argument = env.get(variable.group(1), "").strip()
    axis = _MATRIX.fullmatch(argument)
    if axis is not None:
        values = matrix.get(axis.group(1))
        return [str(v) for v in values] if isinstance(values, list) else []
    return [argument] if re.fullmatch(r"[a-z]+", argument) else []


def max_gap_days(cron: str) -> int:
    """The longest run of days between two days the cron fires on, over four years (a leap year
    included): 1 for daily, 7 for weekly, 31 for monthly. KnowngoodError for a cron it cannot
    read; 10,000 when it never fires."""
    fields = cron.split()
    if len(fields) != 5:
        raise KnowngoodError(f"cron {cron!r} does not have 5 fields")
    dom = _field(fields[2], 1, 31, [])
    month = _field(fields[3], 1, 12, _MONTHS)
    dow = {d % 7 for d in _field(fields[4], 0, 7, _DAYS)}
    either = fields[2] != "*" and fields[4] != "*"  # cron's rule: both restricted means either
    start = date(2025, 1, 1)
    days = []
    for offset in range(4 * 365 + 1):
        day = start + timedelta(days=offset)
        if day.month not in month:
            continue
        by_dom, by_dow = day.day in dom, (day.isoweekday() % 7) in dow
        if (by_dom or by_dow) if either else (by_dom and by_dow):
            days.append(offset)
    if len(days) < 2:
        return 10_000
    return max(b - a for a, b in itertools.pairwise(days))


def _field(text: str, low: int, high: int, names: list[str]) -> set[int]:
    values: set[int] = set()
    for part in text.lower().split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            first, last = low, high
        elif "-" in body:
            a, b = body.split("-", 1)
            first, last = _value(a, low, names), _value(b, low, names)
        else:
            first = _value(body, low, names)
            last = high if step_text else first
        if not (low <= first <= last <= high) or step < 1:
            raise KnowngoodError(f"cron field {text!r} is out of range {low}-{high}")
        values.update(range(first, last + 1, step))
    return values


def _value(text: str, low: int, names: list[str]) -> int:
    if text in names:
        return names.index(text) + low
    if not text.isdigit():
        raise KnowngoodError(f"cron value {text!r} is not a number")
    return int(text)
