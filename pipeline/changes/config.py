"""The resolved config of an agent per environment, and a readable semantic diff of two of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.changes.model import Bump, ConfigChange
from pipeline.repo import deep_merge

PROVIDERS_KEY = "providers"  # knowngood.yaml's definitions of the agent's chain, folded in

# What a change under each top-level key of the resolved config means for the agent's release.
# prompt.*: the rendered prompt decides (agent.py); tools: the tool-schema classifier decides;
# evals.*: which suites gate and their thresholds, no behaviour; anything else: behaviour.
_AREA_BUMP: dict[str, Bump | None] = {
    "description": "patch",
    "owner": "patch",
    "prompt": "patch",
    "tools": None,
    "evals": None,
    "name": None,
}


def resolved(
    config: Mapping[str, Any], overlay: Mapping[str, Any] | None, settings: Mapping[str, Any] | None
) -> dict[str, Any]:
    """agent.yaml with the environment overlay merged in (repo.deep_merge), plus the
    knowngood.yaml definitions of the providers its model chain names (under ``providers``):
    changing what ``openai`` means in knowngood.yaml changes every agent that uses it."""
    data = deep_merge(config, overlay) if overlay else dict(config)
    model = data.get("model")
    if isinstance(settings, Mapping) and isinstance(model, Mapping):
        defined = settings.get("providers")
        defined = defined if isinstance(defined, Mapping) else {}
        chain = [model.get("provider"), *(model.get("fallbacks") or [])]
        names = [n for n in chain if isinstance(n, str)]
        if names:
            data[PROVIDERS_KEY] = {n: defined.get(n) for n in names}
    return data


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ConfigChange]:
    """Differences between two resolved configs: mappings are walked key by key, anything else
    (scalars, and lists, which are short and read best whole) is compared as a value."""
    out: list[ConfigChange] = []
    _walk(old, new, (), out)
    return sorted(out, key=lambda c: c.path)


def _walk(a: Any, b: Any, parts: tuple[Any, ...], out: list[ConfigChange]) -> None:
    if a == b:
        return
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in dict.fromkeys([*a, *b]):
            if key not in a:
                out.append(ConfigChange(dotted((*parts, key)), "added", None, b[key]))
            elif key not in b:
                out.append(ConfigChange(dotted((*parts, key)), "removed", a[key], None))
            else:
                _walk(a[key], b[key], (*parts, key), out)
    else:
        out.append(ConfigChange(dotted(parts), "changed", a, b))


def change_bump(change: ConfigChange) -> Bump | None:
    top = change.path.split(".", 1)[0].split("[", 1)[0]
    return _AREA_BUMP.get(top, "minor")


def dotted(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"
