"""Release tags in a clone and on its remote: list, read, create (never move), delete, fetch.

Every function takes a ``Git`` running inside the repository; tag names are plain
(``support/v1.2.0``), refs are ``refs/tags/<name>``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError, GitError, UsageError
from pipeline.git import Git, commit_env, git_reason, remote_hint
from pipeline.release.version import Version, parse_tag

_FIELDS = (
    "%(refname)",
    "%(objecttype)",
    "%(objectname)",
    "%(*objectname)",
    "%(*objecttype)",
    "%(creatordate:iso-strict)",
    "%(taggername)",
)


@dataclass(frozen=True, slots=True)
class TagRef:
    """One release tag as this clone has it."""

    name: str  # support/v1.2.0
    agent: str
    version: Version
    object: str  # the tag object (annotated) or the commit (lightweight)
    commit: str  # what it points at
    date: str  # ISO 8601: the tagger date (annotated) or the commit date
    tagger: str
    annotated: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "tag": self.name,
            "version": str(self.version),
            "commit": self.commit,
            "date": self.date,
            "tagger": self.tagger,
        }


def release_tags(git: Git, agent: str | None = None) -> list[TagRef]:
    """Release tags ``<agent>/vX.Y.Z`` (of ``agent`` only, when given), ascending by agent and
    version. Other tags are ignored. One ``git for-each-ref``."""
    pattern = f"refs/tags/{agent}/" if agent else "refs/tags/"
    out = git.run("for-each-ref", "--format=" + "%00".join(_FIELDS), pattern)
    tags: list[TagRef] = []
    for line in out.splitlines():
        ref, kind, obj, peeled, peeled_kind, date, tagger = line.split("\0")
        parsed = parse_tag(ref)
        if parsed is None or (agent is not None and parsed[0] != agent):
            continue
        if kind == "tag":
            commit = peeled if peeled_kind == "commit" else _peel(git, ref)
        else:
            commit = obj if kind == "commit" else ""
        if not commit:
            continue  # a tag of a tree or blob: not a release
        name = ref.removeprefix("refs/tags/")
        tags.append(TagRef(name, parsed[0], parsed[1], obj, commit, date, tagger, kind == "tag"))
    tags.sort(key=lambda t: (t.agent, t.version))
    return tags


def agent_tags(git: Git, agent: str) -> list[tuple[Version, str]]:
    """``(version, tag name)`` of every release of ``agent``, oldest version first."""
    return [(t.version, t.name) for t in release_tags(git, agent)]


def latest_tag(git: Git, agent: str) -> str | None:
    """The tag of ``agent``'s highest version, or None before its first release."""
    tags = release_tags(git, agent)
    return tags[-1].name if tags else None


def read_manifest(git: Git, tag: str) -> dict[str, Any]:
    """The manifest an annotated release tag carries (ConfigError when it has none)."""
    name = tag.removeprefix("refs/tags/")
    out = git.run("for-each-ref", "--format=%(objecttype)%00%(contents)", f"refs/tags/{name}")
    if not out:
        raise UsageError(
            f"no tag named {name!r}",
            hint="list releases with `git tag --list '*/v*'`; fetch tags first",
        )
    kind, _, message = out.partition("\0")
    if kind != "tag":
        raise ConfigError(
            f"tag {name} is a lightweight tag: it carries no knowngood manifest",
            hint="releases are annotated tags made by `knowngood release`",
        )
    start = message.find("{")
    try:
        manifest, _ = json.JSONDecoder().raw_decode(message, start) if start >= 0 else (None, 0)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("tag") != name or "files" not in manifest:
        raise ConfigError(
            f"tag {name} carries no knowngood manifest (its message is not `<agent> vX.Y.Z`, "
            "a blank line and the JSON manifest)",
            hint="releases are annotated tags made by `knowngood release`",
        )
    return manifest


def peeled(git: Git, name: str) -> str | None:
    """The commit tag ``name`` points at, or None when there is no such tag."""
    result = git.try_run("rev-parse", "--verify", "--quiet", f"refs/tags/{name}^{{commit}}")
    return result.stdout.strip() if result.code == 0 else None


def _peel(git: Git, ref: str) -> str:
    result = git.try_run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return result.stdout.strip() if result.code == 0 else ""


def create_tag(git: Git, name: str, commit: str, message: str) -> bool:
    """Create the annotated tag ``name`` on ``commit``: True when this call created it, False
    when it already exists on ``commit`` (another run made it: one tag either way). GitError when
    it exists on another commit: a tag is never moved or reused."""
    env = tagger_env(git)
    for attempt in range(8):
        result = git.try_run(
            "tag", "-a", "--cleanup=verbatim", "-F", "-", name, commit, input=message, env=env
        )
        if result.code == 0:
            return True
        there = peeled(git, name)
        if there == commit:
            return False
        if there is not None:
            raise moved_error(name, there, commit, "in this clone")
        if "File exists" not in result.stderr:  # not a concurrent `git tag`'s lock: a real failure
            raise GitError(
                f"could not create tag {name}: {_reason(result.stderr)}",
                cmd=["git", "tag", "-a", name, commit],
                code=result.code,
                stderr=result.stderr,
            )
        time.sleep(random.uniform(0, 0.01 * 2**attempt))
    raise GitError(f"could not create tag {name}: its ref stayed locked", hint="try again")


def moved_error(name: str, there: str, commit: str, where: str) -> GitError:
    return GitError(
        f"tag {name} already exists {where} on commit {there[:12]}, not on {commit[:12]}: "
        "release tags are never moved or reused",
        hint="another release of this version was made from a different commit; "
        "pull, fetch the tags (`git fetch --tags`) and run `knowngood release` again",
    )


def delete_tags(git: Git, tags: Mapping[str, str]) -> None:
    """Delete local tags (name -> the object it must still point at: never someone else's)."""
    for name, obj in tags.items():
        git.try_run("update-ref", "-d", f"refs/tags/{name}", obj)


def tagger_env(git: Git) -> dict[str, str]:
    """knowngood's identity for the tagger, unless git has one configured."""
    configured = all(
        git.try_run("config", key).stdout.strip() for key in ("user.name", "user.email")
    )
    return {} if configured else commit_env()


# -- the remote ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteTag:
    object: str
    commit: str


def remote_tags(git: Git, remote: str, names: Iterable[str] | None = None) -> dict[str, RemoteTag]:
    """Release tags on ``remote`` (only ``names``, when given): name -> object and commit."""
    wanted = set(names) if names is not None else None
    # Every tag, filtered here: a ref pattern would also hide the peeled ``^{}`` lines.
    result = git.try_run("ls-remote", "--tags", remote)
    if result.code != 0:
        raise GitError(
            f"could not list the tags of {remote}: {_reason(result.stderr)}",
            cmd=["git", "ls-remote", "--tags", remote],
            code=result.code,
            stderr=result.stderr,
            hint=remote_hint(remote),
        )
    objects: dict[str, str] = {}
    commits: dict[str, str] = {}
    for line in result.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.endswith("^{}"):
            commits[ref[: -len("^{}")].removeprefix("refs/tags/")] = sha
        else:
            objects[ref.removeprefix("refs/tags/")] = sha
    return {
        name: RemoteTag(obj, commits.get(name, obj))
        for name, obj in objects.items()
        if parse_tag(name) is not None and (wanted is None or name in wanted)
    }


def fetch_tags(git: Git, remote: str, names: Iterable[str], *, force: bool = False) -> None:
    """Fetch these tags from ``remote`` (``force``: replace the local ones of the same name)."""
    plus = "+" if force else ""
    refspecs = [f"{plus}refs/tags/{n}:refs/tags/{n}" for n in names]
    if not refspecs:
        return
    result = git.try_run("fetch", "--quiet", "--no-tags", remote, *refspecs)
    if result.code != 0:
        raise GitError(
            f"could not fetch release tags from {remote}: {_reason(result.stderr)}",
            cmd=["git", "fetch", remote, *refspecs[:3]],
            code=result.code,
            stderr=result.stderr,
            hint=remote_hint(remote),
        )


def _reason(text: str) -> str:
    return git_reason(text) or "git gave no reason"
