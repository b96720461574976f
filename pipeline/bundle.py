"""What gets deployed: one JSON bundle per agent and environment, built from a tag or commit.

A bundle is built from the committed files of a revision, never from the working tree: the
revision's knowngood files (knowngood.yaml, agents/, evals/) are exported byte for byte from
git objects into a temporary directory, validated there like ``knowngood validate`` would, and
resolved into one document (see schemas/bundle.schema.json). ``content_hash`` covers every
field except ``built_at``, so the same revision and environment always hash the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.errors import ConfigError, UsageError
from pipeline.git import Git
from pipeline.gitbranch import cat_blobs
from pipeline.records import utc_now
from pipeline.repo import CONFIG_FILE, Agent, Repo

BUNDLE_VERSION = 1
EXPORTED = (CONFIG_FILE, "agents", "evals")  # what a bundle can depend on
_UNHASHED = ("content_hash", "built_at")

__all__ = [
    "build_bundle",
    "bundle_from_repo",
    "bundle_hash",
    "canonical_json",
    "export_revision",
    "release_of",
    "root_prefix",
    "verify_bundle",
]


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 as is, no NaN: the form that is hashed and signed."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def bundle_hash(bundle: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of everything but ``content_hash`` and ``built_at``."""
    content = {k: v for k, v in bundle.items() if k not in _UNHASHED}
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def as_built_before(bundle: Mapping[str, Any], wanted: str) -> dict[str, Any] | None:
    """``bundle`` as an earlier knowngood built it, if that has the content hash ``wanted``
    (a deployment recorded then, rebuilt now): model chain entries without ``serve`` (added
    with the runtime's local models). None when no earlier form matches."""
    chain = bundle.get("model_chain") or []
    if not any("serve" in entry for entry in chain):
        return None
    older = dict(bundle)
    older["model_chain"] = [{k: v for k, v in e.items() if k != "serve"} for e in chain]
    older["content_hash"] = bundle_hash(older)
    return older if older["content_hash"] == wanted else None


def verify_bundle(bundle: Mapping[str, Any]) -> None:
    """ConfigError unless ``bundle`` matches its schema and its content_hash."""
    from pipeline.schemas import is_valid, validator

    error = None
    if not is_valid("bundle", bundle):  # the compiled fast path; jsonschema says what is wrong
        from jsonschema.exceptions import best_match

        error = best_match(validator("bundle").iter_errors(bundle))
    if error is not None:
        where = "$" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        raise ConfigError(f"invalid bundle: {where}: {error.message}")
    if bundle_hash(bundle) != bundle["content_hash"]:
        raise ConfigError(
            "invalid bundle: content_hash does not match its content (was it edited?)"
        )


def release_of(git: Git, ref: str) -> str | None:
    """The tag name when ``ref`` names a tag, else None."""
    name = ref.removeprefix("refs/tags/")
    return name if git.ref_exists(f"refs/tags/{name}") else None


def export_revision(git: Git, commit: str, prefix: str, dest: Path) -> int:
    """Write the knowngood files of ``commit`` under ``prefix`` into ``dest``; returns the count.

    Exact committed bytes from git objects (one ``ls-tree`` and one ``cat-file --batch``):
    no checkout, no index, no smudge/eol filters or export attributes. Symlinks are kept only
    when they point inside ``dest``; submodules are skipped.
    """
    paths = [f"{prefix}{name}" for name in EXPORTED]
    out = git.run("ls-tree", "--full-tree", "-r", "-z", commit, "--", *paths)
    files: list[tuple[str, str, str]] = []  # (mode, blob, path relative to prefix)
    for line in filter(None, out.split("\0")):
        meta, path = line.split("\t", 1)
        mode, kind, blob = meta.split()
        if kind == "blob":
            files.append((mode, blob, path[len(prefix) :]))
    root = dest.resolve()
    for (mode, _, rel), data in zip(
        files, cat_blobs(git, [blob for _, blob, _ in files]), strict=True
    ):
        target = root.joinpath(*PurePosixPath(rel).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            link = os.fsdecode(data)
            if not os.path.isabs(link) and (target.parent / link).resolve().is_relative_to(root):
                target.symlink_to(link)
            continue
        target.write_bytes(data)
        if mode == "100755":
            target.chmod(0o755)
    return len(files)


def build_bundle(
    git: Git, root: Path, agent: str, ref: str, env: str, *, built_at: str | None = None
) -> dict[str, Any]:
    """The bundle of ``agent`` for ``env`` at ``ref`` (a tag or commit) of the repository at ``root``.

    ConfigError when that revision is not a valid knowngood repository; UsageError for an
    unknown agent or environment.
    """
    from pipeline.validate import valid_repo

    commit = git.rev_parse(ref)
    prefix = root_prefix(git, root)
    with tempfile.TemporaryDirectory(prefix="knowngood-bundle-") as tmp:
        export = Path(tmp)
        export_revision(git, commit, prefix, export)
        if not (export / CONFIG_FILE).is_file():
            raise ConfigError(
                f"{ref} ({commit[:12]}) has no {prefix}{CONFIG_FILE}",
                hint="deploy a revision made after `knowngood init`",
            )
        repo = valid_repo(
            export,
            f"{ref} ({commit[:12]}) is not a valid knowngood revision",
            hint=f"run `git checkout {ref} && knowngood validate`; deploy a revision that passes",
        )
        if env not in repo.settings.environments:
            raise UsageError(
                f"unknown environment {env!r} at {ref} (environments: {', '.join(repo.settings.environments)})",
                hint="list it under deploy.environments in knowngood.yaml",
            )
        return bundle_from_repo(repo, agent, env, release_of(git, ref), commit, built_at=built_at)


def bundle_from_repo(
    repo: Repo,
    agent: str,
    env: str,
    release: str | None,
    commit: str,
    *,
    built_at: str | None = None,
) -> dict[str, Any]:
    """The bundle of ``agent`` for ``env`` from ``repo``, the validated export of ``commit``
    (so several agents and environments of one revision are built from one validation)."""
    bundle = _assemble(repo, repo.agent(agent, env), env, release, commit)
    bundle["content_hash"] = bundle_hash(bundle)
    bundle["built_at"] = built_at or utc_now()
    verify_bundle(bundle)
    return bundle


def _assemble(
    repo: Repo, agent: Agent, env: str, release: str | None, commit: str
) -> dict[str, Any]:
    from pipeline.templates import environment, variables_used

    source = agent.prompt_source
    provided = set(agent.vars) | set(environment().globals)
    runtime_vars = sorted(v for v in variables_used(source) if v not in provided)
    system_prompt = source if runtime_vars else agent.render_prompt()
    chain = []
    for name in agent.chain:
        provider = repo.settings.providers[name]
        entry: dict[str, Any] = {"provider": name, "model": provider.model}
        if provider.api_base:
            entry["api_base"] = provider.api_base
        if provider.api_key_env:
            entry["api_key_env"] = provider.api_key_env
        if provider.serve:
            entry["serve"] = provider.serve
        entry["params"] = {**provider.params, **agent.params}
        chain.append(entry)
    bundle: dict[str, Any] = {
        "version": BUNDLE_VERSION,
        "agent": agent.name,
        "env": env,
        "release": release,
        "commit": commit,
        "config": json.loads(json.dumps(agent.raw)),  # a plain, JSON-safe copy
        "system_prompt": system_prompt,
        "runtime_vars": runtime_vars,
        "tools": [tool.openai_format() for tool in agent.tools],
        "model_chain": chain,
    }
    endpoints = {t.name: e for t in agent.tools if (e := t.runtime_format()) is not None}
    if endpoints:  # only then: bundles of agents without endpoints keep their content hash
        bundle["tool_endpoints"] = endpoints
    try:
        canonical_json(bundle)
    except ValueError as e:  # NaN or infinity in a YAML file
        raise ConfigError(f"agent {agent.name!r} at {commit[:12]}: {e}") from e
    return bundle


def root_prefix(git: Git, root: Path) -> str:
    """``root`` relative to the top of the git repository, as "" or "sub/dir/"."""
    top = git.toplevel().resolve()
    try:
        rel = root.resolve().relative_to(top)
    except ValueError:
        raise UsageError(f"{root} is not inside the git repository {top}") from None
    return "" if rel == Path() else rel.as_posix() + "/"
