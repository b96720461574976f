"""litellm's response objects as the OpenAI documents the runtime answers with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["chunk_dict", "response_dict"]


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _tool_call(call: Any, index: int | None = None) -> dict[str, Any]:
    function = _get(call, "function")
    out: dict[str, Any] = {}
    if index is not None:
        out["index"] = _get(call, "index", index)
    if _get(call, "id"):
        out["id"] = _get(call, "id")
        out["type"] = "function"
    fn: dict[str, Any] = {}
    if _get(function, "name"):
        fn["name"] = _get(function, "name")
    arguments = _get(function, "arguments")
    if arguments is not None:
        fn["arguments"] = arguments
    out["function"] = fn
    return out


def _usage(usage: Any) -> dict[str, int] | None:
    if not usage:
        return None
    prompt = int(_get(usage, "prompt_tokens", 0) or 0)
    completion = int(_get(usage, "completion_tokens", 0) or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(_get(usage, "total_tokens", 0) or prompt + completion),
    }


def response_dict(response: Any) -> dict[str, Any]:
    """litellm's ModelResponse as an OpenAI ``chat.completion`` document."""
    choices = []
    for i, choice in enumerate(response.choices):
        message = choice.message
        content = _get(message, "content")
        if isinstance(content, list):
            content = "".join(str(_get(block, "text", "")) for block in content)
        out: dict[str, Any] = {"role": "assistant", "content": content}
        calls = _get(message, "tool_calls") or []
        if calls:
            out["tool_calls"] = [_tool_call(call) for call in calls]
        choices.append(
            {
                "index": _get(choice, "index", i),
                "message": out,
                "finish_reason": _get(choice, "finish_reason"),
            }
        )
    document: dict[str, Any] = {
        "id": str(_get(response, "id") or ""),
        "object": "chat.completion",
        "created": int(_get(response, "created") or 0),
        "model": str(_get(response, "model") or ""),
        "choices": choices,
    }
    usage = _usage(_get(response, "usage"))
    if usage is not None:
        document["usage"] = usage
    return document


def chunk_dict(chunk: Any) -> dict[str, Any]:
    """litellm's ModelResponseStream as an OpenAI ``chat.completion.chunk`` document."""
    choices = []
    for i, choice in enumerate(_get(chunk, "choices") or ()):
        delta = _get(choice, "delta")
        out: dict[str, Any] = {}
        role = _get(delta, "role")
        if role:
            out["role"] = role
        content = _get(delta, "content")
        if content is not None:
            out["content"] = content
        calls = _get(delta, "tool_calls") or []
        if calls:
            out["tool_calls"] = [_tool_call(call, j) for j, call in enumerate(calls)]
        choices.append(
            {
                "index": _get(choice, "index", i),
                "delta": out,
                "finish_reason": _get(choice, "finish_reason"),
            }
        )
    document: dict[str, Any] = {
        "id": str(_get(chunk, "id") or ""),
        "object": "chat.completion.chunk",
        "created": int(_get(chunk, "created") or 0),
        "model": str(_get(chunk, "model") or ""),
        "choices": choices,
    }
    usage = _usage(_get(chunk, "usage"))
    if usage is not None:
        document["usage"] = usage
    return document
