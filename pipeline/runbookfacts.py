"""What a runbook is generated from, taken from the configuration alone, and its fingerprint.

``knowngood runbook`` renders ``runbooks/<agent>.md`` from two inputs: these facts (knowngood.yaml,
the agent's agent.yaml and environment overlays) and the drill figures in the records. The
runbook's first line carries the fingerprint of the facts, so ``validate`` can tell a committed
runbook is stale against the configuration without reading any record (a pull request's checkout
may not have the records branch); ``knowngood runbook --check`` and ``readiness`` regenerate the
whole file and compare it byte for byte, figures included.

Values only: nothing here prints, and nothing imports the runtime or the providers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.findings import Finding
from pipeline.layout import CONFIG_FILE, DATA_SUFFIXES, discover, rel
from pipeline.repo import DEFAULT_ENVIRONMENTS

RUNBOOK_DIR = "runbooks"
FACTS_VERSION = 1
HEADER = re.compile(r"^<!-- knowngood-runbook agent=([a-z][a-z0-9_-]*) config=([0-9a-f]{16}) ")
DEFAULT_STATE_STORE = "sqlite:///.knowngood/state.db"
DEFAULT_BACKUP_TARGET = {"type": "directory", "path": ".knowngood/backups"}  # knowngood backup's
DEFAULT_RTO_S = 900.0
DEFAULT_RPO_S = 3600.0

Facts = dict[str, Any]

__all__ = [
    "RUNBOOK_DIR",
    "Facts",
    "agent_facts",
    "fingerprint",
    "header_of",
    "orphan_runbooks",
    "recovery_targets",
    "runbook_path",
    "stale_runbook",
    "vendor",
]


def runbook_path(agent: str) -> str:
    """``runbooks/<agent>.md``, relative to the knowngood root."""
    return f"{RUNBOOK_DIR}/{agent}.md"


def vendor(provider: Mapping[str, Any]) -> str:
    """Who runs a provider: ``local`` for a model knowngood serves itself, the host of its
    ``api_base`` for a self-hosted or proxied endpoint, else the litellm prefix of its model
    (openai, anthropic, gemini, azure, bedrock ...). Two providers with the same vendor fail
    together."""
    if provider.get("serve"):
        return "local"
    base = provider.get("api_base")
    if isinstance(base, str) and base:
        return urlsplit(base).netloc or base
    model = str(provider.get("model", ""))
    return model.split("/", 1)[0] if "/" in model else model


def recovery_targets(settings: Mapping[str, Any]) -> dict[str, float]:
    """knowngood.yaml ``runtime.targets`` with their defaults (RTO 15 min, RPO 1 h)."""
    targets = (settings.get("runtime") or {}).get("targets") or {}
    return {
        "rto_s": float(targets.get("rto_s", DEFAULT_RTO_S)),
        "rpo_s": float(targets.get("rpo_s", DEFAULT_RPO_S)),
    }


def agent_facts(
    settings: Mapping[str, Any],
    agent: Mapping[str, Any],
    overlays: Mapping[str, Mapping[str, Any]],
    tools: list[str],
) -> Facts:
    """Everything a runbook says about ``agent`` that comes from the configuration.

    ``settings`` is knowngood.yaml, ``agent`` its agent.yaml, ``overlays`` its environment files
    by environment, ``tools`` its tool files relative to the agent folder. JSON-safe, so its
    fingerprint is stable."""
    providers = settings.get("providers") or {}
    deploy = settings.get("deploy") or {}
    runtime = settings.get("runtime") or {}
    environments = []
    for env in deploy.get("environments") or DEFAULT_ENVIRONMENTS:
        resolved = _merged(agent, overlays.get(env) or {})
        model = resolved.get("model") or {}
        chain = [model.get("provider"), *(model.get("fallbacks") or [])]
        evals = resolved.get("evals") or {}
        environments.append(
            {
                "env": env,
                "owner": resolved.get("owner"),
                "escalation": list(resolved.get("escalation") or []),
                "chain": [
                    {
                        "provider": name,
                        "model": (providers.get(name) or {}).get("model"),
                        "vendor": vendor(providers.get(name) or {}),
                    }
                    for name in chain
                    if isinstance(name, str)
                ],
                "post_deploy": list(evals.get("post_deploy") or []),
                "resilience": resolved.get("resilience") or {},
            }
        )
    target = dict(deploy.get("target") or {"type": "directory", "path": ".knowngood/deployments"})
    backup = (runtime.get("backup") or {}).get("target") or DEFAULT_BACKUP_TARGET
    facts: Facts = {
        "version": FACTS_VERSION,
        "agent": agent.get("name"),
        "description": agent.get("description", ""),
        "owner": agent.get("owner"),
        "escalation": list(agent.get("escalation") or []),
        "main_branch": settings.get("main_branch", "main"),
        "records_branch": (settings.get("records") or {}).get("branch", "knowngood/records"),
        "deploy_target": {k: target[k] for k in sorted(target) if k != "secret_env"},
        "state_store": runtime.get("state_store") or DEFAULT_STATE_STORE,
        "backup_target": dict(backup),
        "targets": recovery_targets(settings),
        "serves_locally": any(
            isinstance(p, Mapping) and p.get("serve") for p in providers.values()
        ),
        "tools": sorted(tools),
        "suites": dict(agent.get("evals") or {}),
        "environments": environments,
    }
    return facts


def _merged(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``deep_merge`` without copying: the result shares the inputs' values (read only here)."""
    out = dict(base)
    for key, value in overlay.items():
        held = out.get(key)
        if isinstance(value, Mapping) and isinstance(held, Mapping):
            out[key] = _merged(held, value)
        else:
            out[key] = value
    return out


def fingerprint(facts: Facts) -> str:
    """16 hex digits of sha256 over the canonical JSON of ``facts``."""
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def header_of(text: str) -> tuple[str, str] | None:
    """(agent, config fingerprint) from a runbook's first line, or None."""
    match = HEADER.match(text)
    return (match.group(1), match.group(2)) if match else None


# -- the working tree, for validate --------------------------------------------------------------


def tool_files(agent_dir: Path, agent: Mapping[str, Any]) -> list[str]:
    """The agent's tool files relative to its folder, as agent.yaml lists them or tools/ holds."""
    listed = agent.get("tools")
    if isinstance(listed, list):
        return [str(t) for t in listed]
    folder = agent_dir / "tools"
    if not folder.is_dir():
        return []
    return sorted(f"tools/{p.name}" for p in folder.iterdir() if p.suffix in DATA_SUFFIXES)


def stale_runbook(root: Path, agent: str, facts: Facts) -> Finding | None:
    """A warning when runbooks/<agent>.md was generated from another configuration (its first
    line's fingerprint differs from ``facts``'); None when it is current, absent or hand-written."""
    where = runbook_path(agent)
    header = header_of(_first_line(root / where))
    if header is None or header[0] != agent or header[1] == fingerprint(facts):
        return None
    return Finding(
        where,
        1,
        None,
        "",
        f"runbook is stale: {CONFIG_FILE} or agents/{agent}/ changed since it was generated",
        "warning",
        "runbook.stale",
        hint=f"regenerate it with `knowngood runbook {agent}` and commit {where}",
    )


def orphan_runbooks(root: Path, agents: Collection[str]) -> list[Finding]:
    """A warning for each generated runbook under runbooks/ whose agent no longer exists."""
    folder = root / RUNBOOK_DIR
    if not folder.is_dir():
        return []
    findings = []
    for path in sorted(folder.glob("*.md")):
        header = header_of(_first_line(path))
        if header is None or header[0] in agents:
            continue
        where = rel(root, path)
        findings.append(
            Finding(
                where,
                1,
                None,
                "",
                f"runbook of agent {header[0]!r}, which no longer exists",
                "warning",
                "runbook.stale",
                hint=f"delete it (`git rm {where}`)",
            )
        )
    return findings


def _first_line(path: Path) -> str:
    """The first line (at most 512 characters) of a regular file; "" for anything else (a
    symlink from a pull request must not make validate read outside the checkout)."""
    if path.is_symlink() or not path.is_file():
        return ""
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return fh.readline(512)
    except OSError:
        return ""


def load_tree(root: Path) -> tuple[Mapping[str, Any], dict[str, Facts]]:
    """knowngood.yaml and the facts of every agent, from the files under ``root``, each checked
    against its schema; ConfigError naming the first problems otherwise (``validate`` says more)."""
    from pipeline.errors import ConfigError
    from pipeline.loading import load
    from pipeline.schemas import check

    layout = discover(root)
    config, problems = load(layout.config, CONFIG_FILE)
    if config is not None:
        problems = [*problems, *check(config, "knowngood")]
    facts: dict[str, Facts] = {}
    for name in sorted(layout.agents):
        files = layout.agents[name]
        doc, found = load(files.config, rel(root, files.config))
        if doc is not None:
            found = [*found, *check(doc, "agent")]
        overlays: dict[str, Mapping[str, Any]] = {}
        for path in files.environments:
            env_doc, env_found = load(path, rel(root, path))
            if env_doc is not None:
                env_found = [*env_found, *check(env_doc, "environment")]
                overlays[path.stem] = env_doc.data
            found += env_found
        problems += found
        if doc is not None and config is not None and not any(f.severity == "error" for f in found):
            facts[name] = agent_facts(
                config.data, doc.data, overlays, tool_files(files.dir, doc.data)
            )
    errors = [f for f in problems if f.severity == "error"]
    if config is None or errors:
        shown = "\n".join(f"  {f.render()}" for f in errors[:10])
        raise ConfigError(
            f"the configuration is invalid:\n{shown}", hint="run `knowngood validate`"
        )
    return config.data, facts
