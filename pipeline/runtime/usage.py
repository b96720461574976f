"""What an answer used: its tokens, as the provider reported them, and their price at
litellm's table. Read by the metrics and by the daily spending limit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["price", "tokens"]

_UNPRICED: set[str] = set()


def tokens(response: Mapping[str, Any]) -> tuple[int, int] | None:
    """(prompt, completion) tokens of a chat.completion; None when it reports no usage."""
    usage = response.get("usage")
    if not isinstance(usage, Mapping):
        return None
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def price(model: str, prompt: int, completion: int) -> float:
    """USD for the tokens at litellm's price of ``model``; 0 when litellm has none."""
    from pipeline.evals import providers

    litellm = providers._LITELLM  # imported by the call that answered
    if litellm is None or not (prompt or completion):
        return 0.0
    if model in _UNPRICED:
        return 0.0
    try:  # about 0.2 ms
        costs = litellm.cost_per_token(
            model=model, prompt_tokens=prompt, completion_tokens=completion
        )
        return max(0.0, float(costs[0]) + float(costs[1]))
    except Exception:  # no price for it (a self-hosted or unknown model): not asked again
        _UNPRICED.add(model)
        return 0.0


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
