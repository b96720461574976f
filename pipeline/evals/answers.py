"""A provider's answer as a run caches and judges it: a plain, redacted dict.

The same in the run's process and in a lane (:mod:`pipeline.evals.lanes`), so an entry is the
same whichever process wrote it.
"""

from __future__ import annotations

from typing import Any

from pipeline.redaction import redact_data

__all__ = ["answer_of"]


def answer_of(completion: Any) -> dict[str, Any]:
    """A provider's Completion (:class:`pipeline.evals.providers.Completion`) as the runner
    caches and judges it, redacted (a model may quote a key: gone before anyone sees it)."""
    return redact_data(
        {
            "text": completion.text or "",
            "tool_calls": [
                {
                    "name": c.name,
                    "arguments": c.arguments,
                    **(
                        {"invalid_arguments": c.invalid_arguments}
                        if c.invalid_arguments is not None
                        else {}
                    ),
                }
                for c in completion.tool_calls
            ],
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "cost_usd": float(completion.cost_usd or 0.0),
            "latency_ms": completion.latency_ms,
            "model": completion.model,
        }
    )
