"""What runs now: the bundle the deploy target says is current, per agent, for one environment.

The runtime never reads the working tree's agents. It reads the bundles ``knowngood deploy``
published to the directory target (``<dir>/<env>/<agent>/current.json``, a symlink flipped
atomically to ``<content_hash>.json``), verifies each one (schema and content hash) and keeps
an immutable :class:`Release` per agent. :meth:`Releases.refresh` notices a deploy, a
rollback or an auto-revert by the link target and the file's identity (a few ``stat`` calls,
cheap enough to run every 200 ms) and loads only what changed. A request holds the
:class:`Release` it started with, so a switch never touches a request in flight.

A bundle that cannot be read or verified is not served: the agent keeps its last good release
and the error is kept in :attr:`Releases.errors` (serve logs it and exposes it on /readyz).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, UsageError

__all__ = [
    "ChainEntry",
    "Change",
    "Release",
    "Releases",
    "deployments_dir",
]

CURRENT = "current.json"
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """One provider of the deployed model chain, as the bundle resolved it."""

    provider: str
    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    serve: str | None = None  # a local model knowngood starts itself (runtime.localmodel)


@dataclass(frozen=True, slots=True)
class Release:
    """One deployed bundle of one agent, ready to serve. Never mutated."""

    agent: str
    env: str
    release: str | None  # <agent>/vX.Y.Z, or None for a bundle built from a commit
    commit: str
    content_hash: str
    system_prompt: str  # rendered, or the template when runtime_vars is not empty
    runtime_vars: tuple[str, ...]
    prompt_vars: Mapping[str, Any]
    tools: tuple[Mapping[str, Any], ...]
    chain: tuple[ChainEntry, ...]
    config: Mapping[str, Any]  # agent.yaml with the environment overlay merged in
    path: str  # the bundle file it was read from
    loaded_at: float  # time.time()
    tool_endpoints: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # by tool

    @property
    def version(self) -> str:
        """``1.2.0`` for ``support/v1.2.0``; the short commit for a bundle without a release."""
        if self.release:
            tail = self.release.rsplit("/", 1)[-1]
            return tail[1:] if tail.startswith("v") and tail[1:2].isdigit() else self.release
        return self.commit[:12]

    @property
    def resilience(self) -> Mapping[str, Any]:
        value = self.config.get("resilience")
        return value if isinstance(value, Mapping) else {}

    def system_message(self, variables: Mapping[str, Any] | None = None) -> str:
        """The system prompt for one conversation. ConfigError names a missing variable."""
        if not self.runtime_vars:
            return self.system_prompt
        missing = [v for v in self.runtime_vars if v not in (variables or {})]
        if missing:
            raise ConfigError(
                f"agent {self.agent!r} needs the prompt variable(s) {', '.join(missing)}",
                hint='send them as "vars": {"name": "value"} in the request',
            )
        from pipeline.templates import render

        return render(self.system_prompt, {**self.prompt_vars, **(variables or {})})

    @classmethod
    def from_bundle(cls, bundle: Mapping[str, Any], path: str) -> Release:
        config = bundle["config"]
        chain = tuple(
            ChainEntry(
                provider=str(item["provider"]),
                model=str(item["model"]),
                api_base=item.get("api_base"),
                api_key_env=item.get("api_key_env"),
                params=dict(item.get("params") or {}),
                serve=item.get("serve"),
            )
            for item in bundle["model_chain"]
        )
        return cls(
            agent=str(bundle["agent"]),
            env=str(bundle["env"]),
            release=bundle.get("release"),
            commit=str(bundle["commit"]),
            content_hash=str(bundle["content_hash"]),
            system_prompt=str(bundle["system_prompt"]),
            runtime_vars=tuple(bundle["runtime_vars"]),
            prompt_vars=dict((config.get("prompt") or {}).get("vars") or {}),
            tools=tuple(bundle["tools"]),
            chain=chain,
            config=config,
            path=path,
            loaded_at=time.time(),
            tool_endpoints={
                str(name): dict(spec) for name, spec in (bundle.get("tool_endpoints") or {}).items()
            },
        )


@dataclass(frozen=True, slots=True)
class Change:
    """What one refresh changed for one agent."""

    agent: str
    old: Release | None
    new: Release | None  # None: the bundle could not be loaded (see error)
    error: str | None = None


_Stamp = tuple[str | None, int, int, int]  # (link target, inode, mtime_ns, size)


def deployments_dir(root: Path, override: Path | None = None) -> Path:
    """The directory target of ``root``'s knowngood.yaml (or ``override``).

    UsageError when the target is a command or HTTP endpoint: the runtime cannot read those
    back, so it needs a directory laid out like the directory target.
    """
    if override is not None:
        return override if override.is_absolute() else (root / override)
    from pipeline.repo import load_settings
    from pipeline.targets import DirectoryTarget, make_target

    target = make_target(load_settings(root).deploy.get("target"), root)
    if not isinstance(target, DirectoryTarget):
        raise UsageError(
            f"the deploy target is of type {target.type!r}: the runtime reads deployed bundles "
            "from a directory target",
            hint="with an http target, make serve the target (serve --receive-deploys); "
            "otherwise pass --deployments DIR, a directory laid out as "
            "<env>/<agent>/current.json (what the directory target writes)",
        )
    return target.path


class Releases:
    """The current release of every agent deployed to ``env`` under ``folder``."""

    def __init__(self, folder: Path, env: str) -> None:
        self.folder = Path(folder)
        self.env = env
        self._current: dict[str, Release] = {}
        self._stamps: dict[str, _Stamp] = {}
        self.errors: dict[str, str] = {}  # agent -> why its newest bundle is not served
        self._lock = threading.Lock()

    @property
    def env_dir(self) -> Path:
        return self.folder / self.env

    def get(self, agent: str) -> Release | None:
        return self._current.get(agent)

    def names(self) -> list[str]:
        return sorted(self._current)

    def all(self) -> list[Release]:
        return [self._current[name] for name in sorted(self._current)]

    def scan(self) -> dict[str, _Stamp]:
        """The stamp of every ``<env>/<agent>/current.json`` (no file is read)."""
        stamps: dict[str, _Stamp] = {}
        try:
            entries = list(os.scandir(self.env_dir))
        except (FileNotFoundError, NotADirectoryError):
            return stamps
        for entry in entries:
            if not set(entry.name) <= _NAME_OK or not entry.is_dir():
                continue
            stamp = _stamp(Path(entry.path, CURRENT))
            if stamp is not None:
                stamps[entry.name] = stamp
        return stamps

    def refresh(self, only: str | None = None) -> list[Change]:
        """Load what changed since the last refresh; ``only``: look at that agent alone.

        Thread-safe: the follower and a received deploy may refresh at the same time.
        """
        with self._lock:
            return self._refresh(only)

    def _refresh(self, only: str | None) -> list[Change]:
        if only is not None:
            stamp = _stamp(self.env_dir / only / CURRENT)
            stamps = {only: stamp} if stamp is not None else {}
        else:
            stamps = self.scan()
        changes: list[Change] = []
        for agent, stamp in sorted(stamps.items()):
            if self._stamps.get(agent) == stamp:
                continue
            self._stamps[agent] = stamp
            old = self._current.get(agent)
            try:
                release = self.load(agent)
            except ConfigError as e:
                self.errors[agent] = e.message
                changes.append(Change(agent, old, None, e.message))
                continue
            self.errors.pop(agent, None)
            if old is not None and old.content_hash == release.content_hash:
                continue
            self._current[agent] = release
            changes.append(Change(agent, old, release))
        return changes

    def load(self, agent: str) -> Release:
        """Read and verify ``<env>/<agent>/current.json``; ConfigError says what is wrong."""
        from pipeline.bundle import verify_bundle

        path = self.env_dir / agent / CURRENT
        shown = str(path.resolve()) if path.is_symlink() else str(path)
        try:
            bundle = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no bundle (was it removed?)") from None
        except OSError as e:
            raise ConfigError(f"{shown}: cannot read: {e.strerror or e}") from None
        except ValueError as e:
            raise ConfigError(f"{shown}: not valid JSON: {e}") from None
        if not isinstance(bundle, dict):
            raise ConfigError(f"{shown}: not a bundle (a JSON object is expected)")
        try:
            verify_bundle(bundle)
        except ConfigError as e:
            raise ConfigError(f"{shown}: {e.message}") from None
        if bundle["agent"] != agent or bundle["env"] != self.env:
            raise ConfigError(
                f"{shown}: a bundle of {bundle['agent']} for {bundle['env']} is current for "
                f"{agent} in {self.env}",
                hint=f"redeploy: knowngood deploy {agent} --env {self.env}",
            )
        return Release.from_bundle(bundle, shown)


def _stamp(path: Path) -> _Stamp | None:
    try:
        link: str | None = os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError:  # not a symlink (the copy fallback of the directory target)
        link = None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (link, st.st_ino, st.st_mtime_ns, st.st_size)
