"""What an assertion sees and returns: the answer (:class:`Output`), the result, the Context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from pipeline.evals.matching import parse_json_answer
from pipeline.evals.toolcalls import ToolCallLike

InputValue = str | Sequence[Mapping[str, Any]] | None


@dataclass(slots=True)
class Output:
    """One answer of one provider, as the assertions see it."""

    text: str = ""
    tool_calls: list[ToolCallLike] = field(default_factory=list)
    latency_ms: float = 0.0
    cost_usd: float = 0.0  # as litellm prices it; local models cost 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _json: tuple[Any, str | None] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def from_completion(cls, completion: Any) -> Output:
        """From a ``providers.Completion`` (or anything with the same attributes)."""
        return cls(
            text=completion.text or "",
            tool_calls=list(completion.tool_calls or ()),
            latency_ms=completion.latency_ms,
            cost_usd=completion.cost_usd,
            prompt_tokens=completion.prompt_tokens or 0,
            completion_tokens=completion.completion_tokens or 0,
        )

    def parsed_json(self) -> tuple[Any, str | None]:
        """The answer parsed as JSON (once): (value, None), or (None, why it is not JSON)."""
        if self._json is None:
            self._json = parse_json_answer(self.text)
        return self._json


@dataclass(frozen=True, slots=True)
class AssertionResult:
    kind: str
    passed: bool
    expected: str  # what was expected, in a few words
    actual: str  # what came back, truncated
    message: str = ""  # why it failed; on a pass, what matched (``not`` reports it)
    details: dict[str, Any] | None = None
    error: bool = False  # the assertion could not be evaluated: a failure ``not`` keeps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Context(Protocol):
    """What the runner gives the assertions that need a model."""

    async def judge(self, provider: str | None, messages: list[dict[str, Any]]) -> str:
        """The grader's reply. ``provider`` None: the repository's ``eval.judge_provider``."""
        ...

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One embedding per text, in order."""
        ...

    def judge_prompt(self, version: str) -> str:
        """The text of ``evals/_judge/<version>.md``; raises KeyError when there is none."""
        ...


Pure = Callable[[Any, Output], AssertionResult]
Graded = Callable[[Any, Output, Context, InputValue], Awaitable[AssertionResult]]


@dataclass(frozen=True, slots=True)
class Assertion:
    """A registry entry: ``pure`` runs without a model, ``graded`` needs the Context."""

    kind: str
    pure: Pure | None = None
    graded: Graded | None = None


def make_result(
    kind: str, passed: bool, expected: str, actual: str, message: str, **details: Any
) -> AssertionResult:
    return AssertionResult(kind, passed, expected, actual, message, details or None)


def error_result(
    kind: str, expected: str, message: str, actual: str = "", **details: Any
) -> AssertionResult:
    return AssertionResult(kind, False, expected, actual, message, details or None, error=True)
