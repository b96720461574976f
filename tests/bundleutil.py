"""A release bundle as `deploy` builds it, for the deploy target tests."""

from __future__ import annotations

from typing import Any

from pipeline.bundle import bundle_hash


def make_bundle(
    prompt: str = "You help.", release: str | None = "bot/v1.0.0", env: str = "production"
) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "version": 1,
        "agent": "bot",
        "env": env,
        "release": release,
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "config": {
            "name": "bot",
            "model": {"provider": "local"},
            "prompt": {"system": "prompts/system.md"},
        },
        "system_prompt": prompt,
        "runtime_vars": [],
        "tools": [],
        "model_chain": [{"provider": "local", "model": "openai/x", "params": {}}],
    }
    bundle["content_hash"] = bundle_hash(bundle)
    bundle["built_at"] = "2026-01-01T00:00:00.000000Z"
    return bundle
