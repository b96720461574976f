"""Which environment variable holds a provider's key, without importing litellm.

:mod:`pipeline.evals.providers` uses these for its calls; the runner, ``validate`` and
``--help`` use them without importing the module that calls models (a fully cached run then
imports neither it nor litellm).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final, Protocol
from urllib.parse import urlparse

__all__ = ["NO_KEY", "is_loopback", "key_env_var", "missing_key", "model_prefix"]


class Reachable(Protocol):
    """What says how to reach a provider: a ProviderSpec, or a knowngood.yaml Provider."""

    @property
    def model(self) -> str: ...
    @property
    def api_base(self) -> str | None: ...
    @property
    def api_key_env(self) -> str | None: ...


# litellm's usual variable per model prefix. Prefixes that authenticate some other way (cloud
# credential chains) or need no key (local servers) are absent or map to None.
_KEY_VARS: Final[Mapping[str, str | None]] = {
    "openai": "OPENAI_API_KEY",
    "text-completion-openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "azure": "AZURE_API_KEY",
    "azure_text": "AZURE_API_KEY",
    "azure_ai": "AZURE_AI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "codestral": "CODESTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "cohere": "COHERE_API_KEY",
    "cohere_chat": "COHERE_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "xai": "XAI_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "fireworks_ai": "FIREWORKS_AI_API_KEY",
    "perplexity": "PERPLEXITYAI_API_KEY",
    "huggingface": "HUGGINGFACE_API_KEY",
    "replicate": "REPLICATE_API_KEY",
    "cerebras": "CEREBRAS_API_KEY",
    "deepinfra": "DEEPINFRA_API_KEY",
    "nvidia_nim": "NVIDIA_NIM_API_KEY",
    "voyage": "VOYAGE_API_KEY",
    "ai21": "AI21_API_KEY",
    "ai21_chat": "AI21_API_KEY",
    "sambanova": "SAMBANOVA_API_KEY",
    "nebius": "NEBIUS_API_KEY",
    "dashscope": "DASHSCOPE_API_KEY",
    "watsonx": "WATSONX_API_KEY",
    "databricks": "DATABRICKS_API_KEY",
    "litellm_proxy": "LITELLM_PROXY_API_KEY",
    # No key: local servers, or a cloud credential chain rather than one variable.
    "ollama": None,
    "ollama_chat": None,
    "hosted_vllm": None,
    "lm_studio": None,
    "llamafile": None,
    "vertex_ai": None,
    "vertex_ai_beta": None,
    "bedrock": None,
    "sagemaker": None,
}

# Unprefixed model names litellm routes by name.
_BARE_MODEL_PREFIXES: Final = (
    (("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "davinci", "babbage"), "openai"),
    (("claude-",), "anthropic"),
)

_LOOPBACK_HOSTS: Final = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}

# Sent when no key is needed, so litellm does not fall back to e.g. OPENAI_API_KEY and hand a
# cloud key to a local server.
NO_KEY: Final = "knowngood-no-key"


def model_prefix(model: str) -> str | None:
    if "/" in model:
        return model.split("/", 1)[0]
    for names, prefix in _BARE_MODEL_PREFIXES:
        if model.startswith(names):
            return prefix
    return None


def is_loopback(api_base: str | None) -> bool:
    """True for a server on this machine (127.0.0.0/8, localhost, ::1)."""
    return _is_loopback(api_base)


def _is_loopback(api_base: str | None) -> bool:
    if not api_base:
        return False
    host = urlparse(api_base).hostname
    return host is not None and (host in _LOOPBACK_HOSTS or host.startswith("127."))


def key_env_var(spec: Reachable) -> str | None:
    """The environment variable that must hold this provider's key, or None if it needs none.

    ``spec.api_key_env`` wins; otherwise litellm's usual variable for the model prefix. A server
    on a loopback ``api_base`` (knowngood-served or ollama-style local models) needs no key.
    """
    if spec.api_key_env:
        return spec.api_key_env
    if _is_loopback(spec.api_base):
        return None
    prefix = model_prefix(spec.model)
    return _KEY_VARS.get(prefix) if prefix is not None else None


def missing_key(spec: Reachable) -> str | None:
    """The name of the variable that must be set and is not (empty counts as unset)."""
    var = key_env_var(spec)
    if var is not None and not os.environ.get(var):
        return var
    return None
