"""Pure helpers for the model-graded assertions: the grading prompt, the grader's verdict, cosine.

The grading prompt is a versioned Markdown file, ``evals/_judge/<version>.md``. It is not a
Jinja2 or ``str.format`` template: the three placeholders ``{{rubric}}``, ``{{input}}`` and
``{{answer}}`` (spaces inside the braces allowed) are replaced in one pass, literally, so braces
in a rubric or an answer never break rendering and an answer can never inject a placeholder.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.evals.matching import clip, parse_json_answer

__all__ = [
    "DEFAULT_JUDGE_PROMPT",
    "DEFAULT_SCORE_THRESHOLD",
    "PLACEHOLDERS",
    "Verdict",
    "cosine",
    "format_input",
    "missing_placeholders",
    "parse_verdict",
    "render_judge_prompt",
]

PLACEHOLDERS = ("rubric", "input", "answer")
DEFAULT_SCORE_THRESHOLD = 0.5

# What `knowngood init` writes to evals/_judge/v1.md.
DEFAULT_JUDGE_PROMPT = """\
You are grading the answer of an AI assistant against a rubric. Judge only what the rubric asks.

<rubric>
{{rubric}}
</rubric>

<input>
{{input}}
</input>

<answer>
{{answer}}
</answer>

Does the answer satisfy the rubric? Reply with one line of JSON and nothing else:
{"pass": true, "reason": "one short sentence"} or {"pass": false, "reason": "one short sentence"}
"""

_PLACEHOLDER = re.compile(r"\{\{\s*(rubric|input|answer)\s*\}\}")
_VERDICT_WORD = re.compile(r"(?i)^\W*(pass|fail)(?:ed)?\b[\W_]*(.*)$", re.DOTALL)
_TRUE = {"true", "pass", "passed", "yes"}
_FALSE = {"false", "fail", "failed", "no"}


def render_judge_prompt(template: str, *, rubric: str, input: str, answer: str) -> str:
    values = {"rubric": rubric, "input": input, "answer": answer}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def missing_placeholders(template: str) -> list[str]:
    """Placeholders a grading prompt lacks; a prompt without ``{{answer}}`` grades nothing."""
    found = {m.group(1) for m in _PLACEHOLDER.finditer(template)}
    return [p for p in PLACEHOLDERS if p not in found]


def format_input(value: str | Sequence[Mapping[str, Any]] | None) -> str:
    """A case input as text: a string as is, chat messages as ``role: content`` lines."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    lines = []
    for message in value:
        content = message.get("content", "")
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        lines.append(f"{message.get('role', 'user')}: {text}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reason: str
    score: float | None = None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return None


def _as_score(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            score = float(value)
        except ValueError:
            return None
        return score if math.isfinite(score) else None
    return None


def _json_object(text: str) -> dict[str, Any] | None:
    value, _ = parse_json_answer(text)
    if isinstance(value, dict):
        return value
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            value = json.loads(text[start : end + 1])
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None
    return None


def parse_verdict(text: str, threshold: float | None = None) -> Verdict | str:
    """The grader's verdict, or an error message saying why it could not be read.

    Accepted, in this order: a JSON object (bare, fenced, or inside prose) with ``pass``
    (true/false) and/or a numeric ``score``; a bare number (a score); a reply that starts with
    PASS or FAIL. A score passes when it is at least ``threshold`` (default 0.5). When the object
    has both, ``pass`` decides unless the assertion set a ``threshold``.
    """
    stripped = text.strip()
    if not stripped:
        return "the grader returned an empty answer"
    data = _json_object(stripped)
    if data is not None:
        passed = _as_bool(data.get("pass", data.get("passed")))
        score = _as_score(data.get("score"))
        reason = str(data.get("reason", data.get("explanation", "")))
        if score is not None and (threshold is not None or passed is None):
            limit = DEFAULT_SCORE_THRESHOLD if threshold is None else threshold
            return Verdict(score >= limit, reason, score)
        if passed is not None:
            return Verdict(passed, reason, score)
        return (
            'the grader\'s JSON has neither "pass" (true/false) nor a numeric "score": '
            f"{clip(stripped, 120)!r}"
        )
    score = _as_score(stripped)
    if score is not None:
        limit = DEFAULT_SCORE_THRESHOLD if threshold is None else threshold
        return Verdict(score >= limit, "", score)
    word = _VERDICT_WORD.match(stripped)
    if word is not None:
        return Verdict(word.group(1).lower() == "pass", word.group(2).strip())
    return (
        'could not read the grader\'s verdict: expected JSON like {"pass": true, "reason": "..."} '
        f"or a score, got {clip(stripped, 120)!r}"
    )


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity; 0.0 when either vector is all zeros. Raises ValueError on unequal sizes."""
    if len(a) != len(b):
        raise ValueError(f"embeddings differ in size: {len(a)} and {len(b)}")
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return dot / norm if norm else 0.0
