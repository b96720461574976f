"""Results written by another process: a shard job's artifact for ``results merge``, the record
of a base commit for the gate, ``release --eval-results``.

Whoever wrote them is not this process, so they are read like any other untrusted file: bounded
in size and nesting, parsed without duplicate keys, checked against
``schemas/results.schema.json``, and every problem is a :class:`~pipeline.errors.UsageError`
that names the file, the line and the JSON path -- never a ``KeyError`` deep in a merge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
from pipeline.evals.results import EvalRun

# A results file holds every case's answers (a few KB each): 10,000 cases fit well under this.
MAX_RESULTS_BYTES = 128 * 1024 * 1024
_HINT = "write it with `knowngood eval --output FILE` (or `--shard K/N --output FILE`)"


def read_results(path: Path, name: str | None = None) -> EvalRun:
    """The run in the results file ``path`` (``name``: how messages call it, default the path).

    Raises UsageError for a file that is too large, not UTF-8, not JSON, nested too deep, or
    not a valid results file, naming the file and line.
    """
    name = name or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_RESULTS_BYTES:
            raise UsageError(
                f"{name}: {size:,} bytes, over the {MAX_RESULTS_BYTES:,}-byte limit of a "
                "results file",
                hint=_HINT,
            )
        raw = path.read_bytes()
    except OSError as e:
        raise UsageError(f"{name}: cannot read results: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise UsageError(f"{name}:{line}: not a results file: not valid UTF-8", hint=_HINT) from e
    return results_from_text(text, name)


def results_from_text(text: str, name: str) -> EvalRun:
    """The run in the JSON ``text`` of a results file that messages call ``name``."""
    from pipeline.loading import parse
    from pipeline.schemas import check

    doc, findings = parse(text, Path("results.json"), name)
    if doc is None:
        raise UsageError(f"not a results file: {findings[0].render()}", hint=_HINT)
    data: Any = doc.data
    if not isinstance(data, dict) or data.get("kind") != "eval-results":
        raise UsageError(
            f"{name}: not a knowngood results file (its `kind` is not eval-results)", hint=_HINT
        )
    problems = check(doc, "results")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UsageError(f"not a valid results file: {problems[0].render()}{more}", hint=_HINT)
    run = EvalRun.from_json(data)
    _consistent(run, name)
    return run


def _consistent(run: EvalRun, name: str) -> None:
    """The summary's spend and calls cover what its cases say was answered: a shard cannot
    claim it cost nothing (or made no call) while its cases hold answers it paid for."""
    answered = [r for c in run.cases for r in c.runs if not r.cached and not r.error]
    cost = sum(r.cost_usd for r in answered)
    if run.spent_usd + 1e-6 + cost * 1e-6 < cost:  # the summary is rounded to 6 decimals
        raise UsageError(
            f"{name}: summary.cost_usd is ${run.spent_usd:.6f}, but its cases' answers cost "
            f"${cost:.6f}: the file was altered",
            hint=_HINT,
        )
    if run.calls_made < len(answered):
        raise UsageError(
            f"{name}: summary.calls is {run.calls_made}, but its cases hold {len(answered)} "
            "answers that were not cached: the file was altered",
            hint=_HINT,
        )


def results_from_data(data: Any, name: str) -> EvalRun:
    """The run in ``data``, a results document already parsed (a record on the records branch)."""
    from pipeline.schemas import is_valid

    if not is_valid("results", data):
        raise UsageError(f"{name} is not a valid results file (see schemas/results.schema.json)")
    return EvalRun.from_json(data)
