"""The values a provider call takes and gives: :class:`ProviderSpec` in, :class:`Completion`
or :class:`Embeddings` out (litellm's answers normalised across providers)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Completion", "Embeddings", "ProviderSpec", "ToolCall"]


@dataclass(frozen=True)
class ProviderSpec:
    """One named provider from ``knowngood.yaml``: a litellm model string and how to reach it."""

    name: str
    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model made, its arguments parsed from JSON.

    ``invalid_arguments`` holds the raw text when the model sent arguments that are not a JSON
    object (``arguments`` is then ``{}``): a wrong answer for the eval to judge, not an error.
    """

    name: str
    arguments: dict[str, Any]
    id: str | None = None
    invalid_arguments: str | None = None


@dataclass(frozen=True)
class Completion:
    """One model answer, normalised across providers."""

    text: str
    tool_calls: list[ToolCall]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float
    model: str
    requests: int = 1  # HTTP requests sent for it


@dataclass(frozen=True)
class Embeddings:
    """Vectors in the order of the texts, what they cost, and the HTTP requests sent."""

    vectors: list[list[float]]
    cost_usd: float
    requests: int = 1
