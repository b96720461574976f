"""Render ``knowngood run``: the answer on stdout, how it was obtained on stderr (text), or the
whole of it as JSON on stdout."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pipeline.report.reporter import Rendered, Reporter, json_reporter

if TYPE_CHECKING:
    from pipeline.runtime.model import Answer


def text(answer: Answer) -> Rendered:
    """The answer's text (its tool calls as JSON when it has no text), then one line saying who
    answered, in how long, with how many tokens, and every attempt."""
    body = answer.text
    if not body and answer.tool_calls:
        body = json.dumps(answer.tool_calls, indent=2, ensure_ascii=False)
    who = answer.provider or f"on_all_down: {answer.fallback}"
    if answer.session is not None:
        who += f" (session {answer.session}, turn {answer.turn})"
    tried = ", ".join(
        f"{a.provider} {a.outcome}" + (f" ({a.kind})" if a.kind else "") + f" {a.ms:.0f} ms"
        for a in answer.attempts
    )
    usage = answer.response.get("usage") or {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    tokens = (
        f", {prompt} + {completion} tokens"
        if isinstance(prompt, int) and isinstance(completion, int)
        else ""
    )
    return Rendered(
        out=f"{body}\n",
        err=f"{answer.agent} {answer.version} in {answer.env}: answered by {who} in "
        f"{answer.ms:.0f} ms{tokens} [{tried}]\n",
    )


REPORTERS: dict[str, Reporter[Answer]] = {
    "text": text,
    "json": json_reporter(ensure_ascii=False),
}
