"""What the runtime answers: a request, its attempts, the answer, and the ways it can fail."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.errors import EXIT_INCOMPLETE, KnowngoodError, UsageError
from pipeline.runtime.requestcheck import kind, message_problem, param_problem, plain_schemas

if TYPE_CHECKING:
    from pipeline.runtime.releases import Change
    from pipeline.runtime.store import BreakerEvent

__all__ = [
    "PARAMS",
    "AllProvidersDown",
    "Answer",
    "Attempt",
    "BadRequest",
    "BudgetExhausted",
    "ChatRequest",
    "Observer",
    "RequestRejected",
    "UnknownAgent",
    "check_session_id",
    "parse_chat_request",
]

# Request fields a client may set; sampling fields override the release's params.
PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "response_format",
        "tool_choice",
        "parallel_tool_calls",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "n",
    }
)
_OTHER_FIELDS = frozenset(
    {"model", "messages", "stream", "stream_options", "vars", "metadata", "session", "callback"}
)
_URL = re.compile(r"^https?://[^\s/]+\S*$")
_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one provider for one request."""

    provider: str
    model: str
    outcome: str  # ok | failed | slow (cancelled after a faster answer) | skipped | rejected
    ms: float  # how long it took (0 for skipped)
    at_ms: float  # when it started, from the start of the request
    kind: str | None = (
        None  # for failures: timeout, connection, rate_limit, server, breaker_open...
    )
    status: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "outcome": self.outcome,
            "ms": round(self.ms, 3),
            "at_ms": round(self.at_ms, 3),
            "kind": self.kind,
            "status": self.status,
            "error": self.error,
        }


@dataclass(slots=True)
class Answer:
    """The answer to one request: the chat.completion document and how it was obtained."""

    agent: str
    env: str
    release: str | None
    version: str
    response: dict[str, Any]
    provider: str | None  # None when on_all_down answered
    model: str | None
    attempts: list[Attempt] = field(default_factory=list)
    fallback: str | None = None  # "message" or "cached" when no provider answered
    ms: float = 0.0
    session: str | None = None  # the session the turn was stored in ...
    turn: int | None = None  # ... as its turn number

    @property
    def exit_code(self) -> int:
        """0: an answer came (a provider's, a holding or a cached one); failures raise."""
        return 0

    @property
    def text(self) -> str:
        choices = self.response.get("choices") or [{}]
        content = (choices[0].get("message") or {}).get("content")
        return content if isinstance(content, str) else ""

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        choices = self.response.get("choices") or [{}]
        calls = (choices[0].get("message") or {}).get("tool_calls") or []
        return list(calls)

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "env": self.env,
            "release": self.release,
            "version": self.version,
            "provider": self.provider,
            "model": self.model,
            "fallback": self.fallback,
            "text": self.text,
            "tool_calls": self.tool_calls,
            "ms": round(self.ms, 3),
            "attempts": [a.to_json() for a in self.attempts],
            "session": self.session,
            "turn": self.turn,
            "response": self.response,
        }


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat request for an agent: the client's messages and the parameters it may set."""

    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    vars: Mapping[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    session: str | None = None  # the messages are the new ones of this session's next turn
    callback: str | None = None  # on_all_down: queue -- where the answer is POSTed


class Observer:
    """What the engine reports as it goes (metrics); the base class ignores it all."""

    def attempt(self, agent: str, attempt: Attempt) -> None:
        pass

    def failover(self, agent: str, from_provider: str, to_provider: str) -> None:
        pass

    def answered(self, agent: str, outcome: str, seconds: float) -> None:
        pass

    def used(self, agent: str, provider: str, model: str, response: Mapping[str, Any]) -> None:
        """A provider's answer (a chat.completion, a stream's included): its ``usage``."""

    def transition(self, event: BreakerEvent) -> None:
        pass

    def release_changed(self, change: Change) -> None:
        pass


class UnknownAgent(UsageError):
    """No agent of that name is deployed to this environment (HTTP 404)."""

    def __init__(self, agent: str, env: str, known: Sequence[str]) -> None:
        names = ", ".join(known) if known else "none"
        super().__init__(
            f"no agent named {agent!r} is deployed to {env} (deployed: {names})",
            hint=f"deploy it: knowngood deploy {agent} --env {env}" if not known else None,
        )
        self.agent = agent
        self.known = list(known)


class BadRequest(UsageError):
    """The request itself is malformed (HTTP 400)."""


class RequestRejected(KnowngoodError):
    """A provider answered that the request is invalid (HTTP 4xx): every provider would."""

    exit_code = EXIT_INCOMPLETE

    def __init__(
        self,
        message: str,
        status: int,
        attempts: list[Attempt],
        code: str = "rejected_by_provider",  # the OpenAI error code the client gets
    ) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts
        self.code = code


class AllProvidersDown(KnowngoodError):
    """No provider of the chain answered and on_all_down is ``error`` (HTTP 503)."""

    exit_code = EXIT_INCOMPLETE

    def __init__(self, agent: str, attempts: list[Attempt]) -> None:
        tried = "; ".join(
            f"{a.provider}: {a.error or a.kind or a.outcome}" for a in attempts if a.outcome != "ok"
        )
        super().__init__(
            f"{agent}: every provider of the chain failed ({tried or 'none was tried'})",
            hint="the breakers, attempts and timings are in the answer's attempts",
        )
        self.agent = agent
        self.attempts = attempts


class BudgetExhausted(KnowngoodError):
    """The agent spent its ``resilience.daily_budget_usd`` today (UTC), or what is left of it
    is less than the most the request may cost (``worst``): no provider is called (HTTP 429
    ``budget_exhausted``, with Retry-After until midnight)."""

    exit_code = EXIT_INCOMPLETE

    def __init__(
        self,
        agent: str,
        env: str,
        budget: float,
        spent: float,
        retry_after_s: int,
        worst: str | None = None,
        held: float = 0.0,
    ):
        spent_of = f"${spent:.4f} of its ${budget:g} daily budget in {env} today (UTC)"
        if held > 0:
            spent_of += f", and its requests in flight hold ${held:.4f} of it"
        super().__init__(
            f"{agent} spent {spent_of}: no provider is called until midnight UTC"
            if worst is None
            else f"this request to {agent} may cost up to {worst}, more than is left: {agent} "
            f"spent {spent_of}; lower max_tokens or n",
            hint="raise resilience.daily_budget_usd in its agent.yaml and deploy, if this is "
            "expected traffic",
        )
        self.agent = agent
        self.retry_after_s = retry_after_s


def parse_chat_request(data: Any) -> tuple[str, ChatRequest]:
    """(agent, request) from an OpenAI chat-completions body; BadRequest says what is wrong.

    Long on purpose: one check per field of the body, in the order a client reads the errors.
    """
    if not isinstance(data, dict):
        raise BadRequest(f"the request body must be a JSON object, not {kind(data)}")
    agent = data.get("model")
    if not isinstance(agent, str) or not agent:
        raise BadRequest("'model' is required: the name of the agent to ask")
    unknown = sorted(set(data) - PARAMS - _OTHER_FIELDS)
    if "tools" in unknown or "functions" in unknown:
        raise BadRequest(
            f"'tools' come from the deployed release of {agent!r}: drop them from the request"
        )
    if unknown:
        raise BadRequest(f"unsupported field(s): {', '.join(unknown)}")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array of messages")
    for i, message in enumerate(messages):
        if (problem := message_problem(i, message)) is not None:
            raise BadRequest(problem)
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object")
    variables = data.get("vars") or {}
    if not isinstance(variables, dict):
        raise BadRequest("'vars' must be an object of prompt variables")
    session = data.get("session")
    if session is not None:
        session = check_session_id(session)
    callback = data.get("callback")
    if callback is not None and not (isinstance(callback, str) and _URL.match(callback)):
        raise BadRequest("'callback' must be an http:// or https:// URL")
    params = {k: v for k, v in data.items() if k in PARAMS}
    if (problem := param_problem(params)) is not None:
        raise BadRequest(problem)
    return agent, ChatRequest(
        messages=tuple(messages),
        params=plain_schemas(params),
        vars=variables,
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        session=session,
        callback=callback,
    )


def check_session_id(value: Any, where: str = "'session'") -> str:
    """``value`` when it is a session id (1-128 letters, digits, ``._:@-``); BadRequest else."""
    if not isinstance(value, str) or not _SESSION_ID.match(value):
        raise BadRequest(
            f"{where} must be a session id: 1 to 128 letters, digits and . _ : @ -, "
            "starting with a letter or digit"
        )
    return value
