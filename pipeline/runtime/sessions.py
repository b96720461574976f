"""State per conversation: the turns of a session, kept in the state store.

A client that names a session (``session`` in the request body or the ``X-Knowngood-Session``
header for ``serve``, ``session=`` in the Python API, ``knowngood run --session``) sends only
its new messages: the runtime sends the model the release's system prompt, the conversation so
far, then them. After the answer, the turn is stored: the client's messages (user messages,
tool results), the assistant's message (text, tool calls), the provider that answered and the
release that served it. Any worker sharing the state store continues the conversation, so a
worker killed and restarted picks it up where it stopped.

A turn whose answer came from ``on_all_down`` (the holding message, a cached answer) is kept
with it but the answer is not sent to the model again; a turn that failed is not stored (the
client may send it again). A session belongs to the agent and environment of its first turn.
Turns of one session are numbered in the order they are stored; send one at a time.

A session can be read back (``GET /v1/sessions/{id}``, ``Agent.history``, ``knowngood
sessions show``) and deleted with its turns (``DELETE``, ``Agent.forget``, ``knowngood sessions
delete``); ``runtime.sessions_keep_days`` deletes those left unused (:mod:`pipeline.runtime.retention`).
``serve`` and an ``Agent`` see only the sessions of their own environment (and agent).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from pipeline.runtime.model import Answer, BadRequest, ChatRequest, check_session_id
from pipeline.runtime.releases import Release
from pipeline.runtime.store import StateStore, Turn
from pipeline.runtime.store.turns import SessionBusy, SessionTaken

__all__ = [
    "SESSION_HEADER",
    "SessionBusy",
    "SessionTaken",
    "Sessions",
    "assistant_message",
    "check_session_id",
    "with_session_header",
]

SESSION_HEADER = "X-Knowngood-Session"
_KEPT = ("role", "content", "tool_calls", "name", "refusal")


def assistant_message(response: dict[str, Any]) -> dict[str, Any]:
    """The assistant's message of a chat.completion, as it goes back to a model."""
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    kept = {k: message[k] for k in _KEPT if message.get(k) is not None}
    kept["role"] = "assistant"
    kept.setdefault("content", None if kept.get("tool_calls") else "")
    return kept


def with_session_header(chat: ChatRequest, header: str | None) -> ChatRequest:
    """``chat`` in the session the ``X-Knowngood-Session`` header names (``serve``). The body's
    ``session`` and the header may both be given only when they agree (BadRequest else)."""
    if header is None:
        return chat
    session = check_session_id(header, f"the {SESSION_HEADER} header")
    if chat.session is not None and chat.session != session:
        raise BadRequest(f"'session' is {chat.session!r} but {SESSION_HEADER} is {session!r}")
    return replace(chat, session=session)


class Sessions:
    """Reads and writes the turns of sessions in ``store``."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def prepare(self, release: Release, chat: ChatRequest) -> ChatRequest:
        """``chat`` with the conversation so far before its messages (itself without a session).
        SessionTaken when the session belongs to another agent or environment."""
        if chat.session is None:
            return chat
        owner = self.store.session_owner(chat.session)
        if owner is None:
            return chat
        if owner != (release.agent, release.env):
            raise SessionTaken(
                f"session {chat.session!r} belongs to agent {owner[0]} in {owner[1]}, "
                f"not {release.agent} in {release.env}",
                hint="use a new session id for another agent",
            )
        history = [m for turn in self.store.turns(chat.session) for m in turn.history()]
        return replace(chat, messages=(*history, *chat.messages))

    def history(
        self, session: str, env: str, agent: str | None = None, after: int = 0
    ) -> tuple[str, list[Turn]] | None:
        """(its agent, its turns after the ``after``-th, oldest first) of ``session``; None
        unless it belongs to ``env`` (and to ``agent``, when given)."""
        owner = self._owner(session, env, agent)
        return (owner, self.store.turns(session, after)) if owner is not None else None

    def forget(self, session: str, env: str, agent: str | None = None) -> int | None:
        """Delete ``session`` with its turns: how many it had; None unless it belongs to
        ``env`` (and ``agent``). SessionBusy while the outage queue holds a request of it."""
        if self._owner(session, env, agent) is None:
            return None
        return self.store.delete_session(session)

    def _owner(self, session: str, env: str, agent: str | None) -> str | None:
        """The agent ``session`` belongs to, when it is of ``env`` (and of ``agent``)."""
        owner = self.store.session_owner(session)
        if owner is None or owner[1] != env or agent not in (None, owner[0]):
            return None
        return owner[0]

    def record(self, release: Release, chat: ChatRequest, answer: Answer) -> Turn | None:
        """Store the turn ``chat`` (the client's new messages) got ``answer``; sets
        ``answer.session`` and ``answer.turn``. None without a session."""
        turn = self.turn_for(release, chat, answer)
        if turn is None:
            return None
        turn = self.store.add_turn(turn)
        answer.session, answer.turn = turn.session, turn.n
        return turn

    @staticmethod
    def turn_for(release: Release, chat: ChatRequest, answer: Answer) -> Turn | None:
        """The turn to store (its ``n`` not given yet); None without a session."""
        if chat.session is None:
            return None
        return Turn(
            session=chat.session,
            n=0,
            agent=release.agent,
            env=release.env,
            at=time.time(),
            messages=[dict(m) for m in chat.messages],
            answer=assistant_message(answer.response),
            release=release.release,
            version=release.version,
            provider=answer.provider,
            model=answer.model,
            fallback=answer.fallback,
            attempts=[a.to_json() for a in answer.attempts],
        )
