"""A model's answer with the secrets redacted before anyone sees it (:mod:`pipeline.redaction`).

A model asked to repeat what it was sent, or one that was given a key in its prompt, may answer
with a provider's key; the runtime's client, its sessions, its cached answers and its
Idempotency-Key replays must never hold it. A whole answer is redacted at once
(:func:`redaction.redact_data`). A stream is redacted chunk by chunk (:class:`StreamRedactor`), and a
key may arrive cut across two chunks: the end of a chunk's text that could be the start of a
secret is held back until the next chunk says whether it is one (or the choice finishes).
"""

from __future__ import annotations

from typing import Any

from pipeline import redaction

__all__ = ["StreamRedactor"]


def _spellings() -> tuple[str, ...]:
    """Every spelling of every secret the process knows (what :func:`redaction.redact` looks
    for), to tell when a chunk's end may be the start of one."""
    return tuple(spelling for spelling, _ in redaction._current().text)


def _held_back(text: str, spellings: tuple[str, ...]) -> int:
    """How many characters at the end of ``text`` may be the start of a secret."""
    longest = 0
    for spelling in spellings:
        most = min(len(spelling) - 1, len(text))
        for n in range(most, longest, -1):
            if text.endswith(spelling[:n]):
                longest = n
                break
    return longest


class StreamRedactor:
    """Redacts the text of a stream's chunks (content and tool-call arguments), holding back
    what may be a secret cut in two until the next chunk or the choice's end."""

    def __init__(self) -> None:
        self._held: dict[tuple[int, int], str] = {}  # (choice, tool call or -1) -> text

    def chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """``chunk`` (a chat.completion.chunk document), redacted in place."""
        spellings = _spellings()
        if not spellings and not self._held:
            return chunk
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            finished = bool(choice.get("finish_reason"))
            if isinstance(delta.get("content"), str) or (finished and (index, -1) in self._held):
                text = delta.get("content") or ""
                delta["content"] = self._pass((index, -1), text, finished, spellings)
            calls = delta.get("tool_calls") or []
            for call in calls:
                function = call.get("function")
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    key = (index, call.get("index", 0))
                    arguments = function["arguments"]
                    function["arguments"] = self._pass(key, arguments, finished, spellings)
            if finished:  # what is still held of its tool calls goes out with its end
                for (i, tool), rest in list(self._held.items()):
                    if i == index and tool >= 0:
                        del self._held[(i, tool)]
                        calls.append(
                            {"index": tool, "function": {"arguments": redaction.redact(rest)}}
                        )
                if calls:
                    delta["tool_calls"] = calls
        return chunk

    def _pass(
        self, key: tuple[int, int], text: str, finished: bool, spellings: tuple[str, ...]
    ) -> str:
        text = self._held.pop(key, "") + text
        cut = len(text) if finished else _cut(text, spellings)
        if cut < len(text):
            self._held[key] = text[cut:]
        return redaction.redact(text[:cut])


def _cut(text: str, spellings: tuple[str, ...]) -> int:
    """Where to cut ``text``: before the end that may be a secret's start, but never inside a
    whole secret (one that overlaps itself, e.g. ``abcab``, could else be cut in two)."""
    cut = len(text) - _held_back(text, spellings)
    moved = True
    while moved:
        moved = False
        for spelling in spellings:
            at = text.find(spelling, max(0, cut - len(spelling) + 1))
            if at != -1 and at < cut < at + len(spelling):
                cut, moved = at + len(spelling), True
    return cut
