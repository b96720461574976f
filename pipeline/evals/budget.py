"""The ``--budget`` cap: reserve each request's worst case before it is sent, settle after.

Before a request goes out, :meth:`Budget.reserve` sets aside the most it can cost (:func:`chat_bound`).
When that does not fit in what is left, the request waits for the requests in flight to settle;
when none is in flight and it still does not fit, it is refused, and so is every request after
it: the run ends incomplete (exit 3) without sending anything more. After the answer the
reservation becomes the provider's real cost (:meth:`Budget.settle`); an error answer (an HTTP
status: nothing was generated) releases it (:meth:`Budget.release`); a request whose answer was
lost (timeout, reset, unreadable body) may still be billed, so its worst case stays counted
(:meth:`Budget.lose`), apart from the real spend. So real spend plus lost worst cases never
exceed the budget, as long as the provider bills within the bound.

The bound needs no tokenizer: a prompt has at most as many tokens as its UTF-8 bytes (every token
of a byte-level or byte-fallback tokenizer covers at least one byte), and the answer at most the
``max_tokens`` the request carries. A request without one gets the model's own maximum output
from litellm's price table (what the provider would allow anyway, so the answer is unchanged).
Prices are the highest the table lists for the request's service tier (long-prompt tiers
included).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from pipeline.words import plural

if TYPE_CHECKING:
    import asyncio

__all__ = ["Bound", "Budget", "answer_bound", "chat_bound", "embedding_bound", "prompt_bound"]

# Tokens a provider adds around the request: a tool-use system prompt (Anthropic documents
# ~350 tokens) and the reply's priming. Generous on purpose.
TOOLS_PROMPT_TOKENS: Final = 512
FRAME_TOKENS: Final = 32
_OUTPUT_LIMITS: Final = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_TIERS: Final = {"priority": "_priority", "flex": "_flex"}
_EPSILON: Final = 1e-12


@dataclass(frozen=True, slots=True)
class Bound:
    """The most one request may cost, and what must be added to it to make that true."""

    worst_usd: float
    extra_params: Mapping[str, Any] = field(default_factory=dict)
    why: str = ""  # how the bound was reached, for the refusal notice


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _rate(info: Mapping[str, Any], names: Sequence[str], tier: str) -> float:
    """The highest per-token price of ``names`` in ``tier``, any prompt-length band included."""
    pattern = re.compile(rf"^(?:{'|'.join(names)})(?:_above_[a-z0-9]+(?:_tokens)?)?{tier}$")
    rates = [
        float(v)
        for k, v in info.items()
        if pattern.match(k) and isinstance(v, int | float) and not isinstance(v, bool)
    ]
    if not rates and tier:
        return _rate(info, names, "")
    return max(rates, default=0.0)


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def prompt_bound(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    params: Mapping[str, Any],
) -> int:
    """The most prompt tokens a chat request may be billed: a token per byte, and the frame."""
    prompt = _size(messages) + _size(dict(params)) + FRAME_TOKENS
    if tools:
        prompt += _size(list(tools)) + TOOLS_PROMPT_TOKENS
    return prompt


def answer_bound(response: Mapping[str, Any]) -> int:
    """The most completion tokens the answers in ``response`` (a chat.completion) may have been
    billed: a token per byte of each answer's message, and the frame."""
    messages = [c.get("message") for c in response.get("choices") or () if isinstance(c, Mapping)]
    return _size(messages) + FRAME_TOKENS


def chat_bound(
    info: Mapping[str, Any],
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    params: Mapping[str, Any],
) -> Bound:
    """The worst-case cost of one chat request to a model priced by ``info`` (litellm's entry).

    ``extra_params`` holds the ``max_tokens`` to send when ``params`` set no output limit.
    """
    tier = _TIERS.get(str(params.get("service_tier") or ""), "")
    prompt = prompt_bound(messages, tools, params)
    inputs = ["input_cost_per_token"]
    if "cache_control" in json.dumps(messages):  # prompt caching bills writes above input
        inputs.append("cache_creation_input_token_cost")
    input_rate = _rate(info, inputs, tier)
    output_rate = _rate(info, ["output_cost_per_token", "output_cost_per_reasoning_token"], tier)
    limits = [n for k in _OUTPUT_LIMITS if (n := _positive_int(params.get(k))) is not None]
    extra: dict[str, Any] = {}
    if limits:
        output = max(limits)
    else:
        model_max = _positive_int(info.get("max_output_tokens")) or _positive_int(
            info.get("max_tokens")
        )
        if model_max is None:
            return Bound(math.inf, why="the model's maximum output is unknown: set max_tokens")
        output, extra = model_max, {"max_tokens": model_max}
    choices = _positive_int(params.get("n")) or 1
    worst = prompt * input_rate + output * choices * output_rate
    why = f"{prompt} prompt and {output * choices} output tokens at most"
    return Bound(worst, extra, why)


def embedding_bound(info: Mapping[str, Any], texts: Sequence[str]) -> Bound:
    """The worst-case cost of embedding ``texts`` (input tokens only)."""
    prompt = _size(list(texts)) + FRAME_TOKENS
    return Bound(prompt * _rate(info, ["input_cost_per_token"], ""), why=f"{prompt} tokens")


class Budget:
    """Spend against an optional limit, safe for the concurrent requests of one event loop."""

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.spent = 0.0  # what providers billed for the answers received
        self.lost = 0.0  # worst cases of requests whose answer was lost (they may be billed)
        self.lost_requests = 0
        self.reserved = 0.0
        self.in_flight = 0
        self.refused = 0  # requests not sent
        self.refused_bound: Bound | None = None  # the first of them
        self.overruns = 0  # answers billed above their bound
        self._waiters: list[asyncio.Future[None]] = []

    def _fits(self, worst: float) -> bool:
        assert self.limit is not None
        return self.spent + self.lost + self.reserved + worst <= self.limit + _EPSILON

    async def reserve(self, request: Bound) -> bool:
        """Set aside ``request``'s worst case; False (and nothing more is sent) when it cannot fit."""
        if self.limit is None:
            self.in_flight += 1
            return True
        while self.refused == 0:
            if self._fits(request.worst_usd):
                self.reserved += request.worst_usd
                self.in_flight += 1
                return True
            if self.in_flight == 0:
                break
            import asyncio  # here: a fully cached run never imports it

            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        self.refused += 1
        if self.refused_bound is None:
            self.refused_bound = request
        self._wake()  # the others waiting are refused too
        return False

    def settle(self, request: Bound, cost_usd: float) -> None:
        """The answer came: its real cost replaces the reservation."""
        self.spent += cost_usd
        if self.limit is not None and cost_usd > request.worst_usd + _EPSILON:
            self.overruns += 1
        self._done(request)

    def release(self, request: Bound) -> None:
        """An error answer: nothing was generated, nothing is billed."""
        self._done(request)

    def lose(self, request: Bound) -> None:
        """The answer was lost after the request went out: count its worst case as spent."""
        if self.limit is not None:
            self.lost += request.worst_usd
            self.lost_requests += 1
        self._done(request)

    def _done(self, request: Bound) -> None:
        self.in_flight -= 1
        if self.limit is not None:
            self.reserved = max(0.0, self.reserved - request.worst_usd) if self.in_flight else 0.0
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def notices(self) -> tuple[list[str], list[str]]:
        """(why the run is incomplete, what else the reader must know) about the money."""
        incomplete: list[str] = []
        notices: list[str] = []
        if self.limit is None:
            return incomplete, notices
        if self.refused:
            first = self.refused_bound
            detail = ""
            if first is not None and math.isfinite(first.worst_usd):
                detail = f"; the next could cost up to ${first.worst_usd:.6f} ({first.why})"
            elif first is not None:
                detail = f"; the next has no bound ({first.why})"
            incomplete.append(
                f"budget of ${self.limit} reached after spending ${self.spent:.6f}: "
                f"{plural(self.refused, 'call')} not sent{detail}"
            )
        if self.lost_requests:
            notices.append(
                f"{plural(self.lost_requests, 'request')} lost their answer (timeout, reset or unreadable"
                f" body) and may be billed: up to ${self.lost:.6f} more than the"
                f" ${self.spent:.6f} spent, counted against the budget"
            )
        if self.overruns:
            notices.append(
                f"{plural(self.overruns, 'answer')} cost more than "
                f"{'its' if self.overruns == 1 else 'their'} bound: the provider billed "
                "more tokens than the request allowed; the budget may be exceeded by the difference"
            )
        return incomplete, notices
