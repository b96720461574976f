"""The manifest a release tag carries, built from git objects of the release commit.

The revision is exported from git objects (never the working tree) and validated like
``knowngood validate``: an invalid revision is never tagged. File paths in the manifest are
relative to the knowngood root (the folder holding knowngood.yaml), like every other path
knowngood prints; ``root`` says where that folder sits in the git repository ("" at the top).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.changes.revision import list_tree, read_blobs
from pipeline.errors import KnowngoodError
from pipeline.git import Git
from pipeline.release.plan import PlannedRelease
from pipeline.repo import Repo

MANIFEST_VERSION = 1
Chain = list[dict[str, str]]


def tag_message(manifest: Mapping[str, Any]) -> str:
    """``<agent> vX.Y.Z``, a blank line, the manifest as JSON."""
    body = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False)
    return f"{manifest['agent']} {manifest['release']}\n\n{body}\n"


def build_manifests(
    git: Git,
    commit: str,
    releases: Sequence[PlannedRelease],
    *,
    eval_summary: Mapping[str, Any] | None,
    eval_source: str | None,
    created_at: str,
    notes: list[str],
) -> dict[str, dict[str, Any]]:
    """tag -> manifest for every planned release. ``git`` runs in the knowngood root.
    ConfigError when the revision does not validate."""
    if not releases:
        return {}
    prefix = git.run("rev-parse", "--show-prefix").strip()
    chains, records_branch = _model_chains(git, commit, prefix, [r.agent for r in releases])
    files = _file_hashes(git, commit, [r.agent for r in releases])
    if eval_summary is None:
        eval_summary, eval_source = _stored_results(git, records_branch, commit), "records"
    if eval_summary is not None and eval_summary.get("commit") not in (None, commit):
        notes.append(
            f"the eval results ({eval_source}) are of commit {str(eval_summary['commit'])[:12]}, "
            f"not of the release commit {commit[:12]}: the manifests say so"
        )
    manifests: dict[str, dict[str, Any]] = {}
    for release in releases:
        base, by_env = chains[release.agent]
        manifest: dict[str, Any] = {
            "version": MANIFEST_VERSION,
            "agent": release.agent,
            "release": f"v{release.version}",
            "tag": release.tag,
            "commit": commit,
            "previous": release.previous_tag,
            "bump": release.bump,
            "release_as": str(release.release_as) if release.release_as is not None else None,
            "reasons": list(release.reasons),
            "root": prefix.rstrip("/"),
            "files": files[release.agent],
            "model_chain": base,
            "eval": agent_eval(eval_summary, release.agent, eval_source) if eval_summary else None,
            "created_at": created_at,
            "created_by": f"knowngood {__version__}",
        }
        if by_env:
            manifest["environments"] = {
                env: {"model_chain": chain} for env, chain in by_env.items()
            }
        manifests[release.tag] = manifest
    return manifests


def agent_eval(results: Mapping[str, Any], agent: str, source: str | None) -> dict[str, Any] | None:
    """``agent``'s part of an eval results document (``knowngood eval --output``); a mapping
    without ``cases`` is taken as a ready summary. None when the results hold no case of it."""
    if "cases" not in results:
        return dict(results)
    cases = [
        c for c in results.get("cases") or [] if isinstance(c, Mapping) and c.get("agent") == agent
    ]
    if not cases:
        return None
    counts = {"pass": 0, "fail": 0, "error": 0, "skipped": 0}
    for case in cases:
        status = str(case.get("status"))
        counts[status if status in counts else "error"] += 1
    ran = len(cases) - counts["skipped"]
    return {
        "source": source,
        "commit": results.get("commit"),
        "cases": len(cases),
        "passed": counts["pass"],
        "failed": counts["fail"],
        "errors": counts["error"],
        "skipped": counts["skipped"],
        "flaky": sum(1 for c in cases if c.get("flaky")),
        "pass_rate": round(counts["pass"] / ran, 4) if ran else None,
        "suites": sorted({str(c.get("suite")) for c in cases}),
        "providers": sorted({str(c.get("provider")) for c in cases}),
    }


def _file_hashes(git: Git, commit: str, agents: Sequence[str]) -> dict[str, dict[str, str]]:
    """agent -> {root-relative path: sha256} of agents/<agent>/** and evals/<agent>/**."""
    entries = list_tree(git, commit, [p for a in agents for p in (f"agents/{a}/", f"evals/{a}/")])
    blobs = read_blobs(git, [e.sha for e in entries.values()])
    digests = {sha: hashlib.sha256(data).hexdigest() for sha, data in blobs.items()}
    files: dict[str, dict[str, str]] = {a: {} for a in agents}
    for path, entry in sorted(entries.items()):
        agent = path.split("/", 2)[1]
        if entry.sha not in digests:
            raise KnowngoodError(f"{path}: blob {entry.sha} is missing from the repository")
        files[agent][path] = digests[entry.sha]
    return files


def _model_chains(
    git: Git, commit: str, prefix: str, agents: Sequence[str]
) -> tuple[dict[str, tuple[Chain, dict[str, Chain]]], str]:
    """Validate the revision; per agent its model chain and the environments that change it."""
    from pipeline.bundle import export_revision
    from pipeline.validate import valid_repo

    with tempfile.TemporaryDirectory(prefix="knowngood-release-") as tmp:
        export_revision(git, commit, prefix, Path(tmp))
        repo = valid_repo(
            Path(tmp),
            f"commit {commit[:12]} does not validate",
            after="; nothing was tagged",
            hint="fix them (`knowngood validate`), commit, and release that commit",
        )
        chains: dict[str, tuple[Chain, dict[str, Chain]]] = {}
        for agent in agents:
            base = _chain(repo, agent, None)
            by_env = {env: _chain(repo, agent, env) for env in repo.settings.environments}
            chains[agent] = (base, {env: c for env, c in by_env.items() if c != base})
        return chains, repo.settings.records_branch


def _chain(repo: Repo, agent: str, env: str | None) -> Chain:
    resolved = repo.agent(agent, env)
    return [
        {"provider": name, "model": repo.settings.providers[name].model} for name in resolved.chain
    ]


def _stored_results(git: Git, branch: str, commit: str) -> dict[str, Any] | None:
    """The eval results kept on the records branch for ``commit`` (local only), or None."""
    from pipeline.records import RecordStore

    try:
        return RecordStore(git, branch).get_results(commit)
    except (KnowngoodError, ValueError, KeyError):
        return None
