"""What every deploy-side operation shares: settings, the records store, the target, releases.

``Context.open`` reads knowngood.yaml as committed at HEAD (the deploy target, environments,
records branch and revert policy; never an uncommitted edit), fetches the records branch, and
builds the target. Bundles themselves always come from a release tag (``bundle_for_release``)
or from a bundle the target already holds (``bundle_for_record``), never from the working tree.

Crash consistency: ``publish`` (and ``remove``) write and push an intent record before the
target changes, and the deployment record naming it after; ``running`` settles an intent left
by a process that died in between with what the target reports (:mod:`pipeline.running`), so
every command starts from what really runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from pipeline.bundle import as_built_before, build_bundle, bundle_hash, verify_bundle
from pipeline.deploy.lock import check_lock, here
from pipeline.errors import ConfigError, DeployError, GitError, KnowngoodError, UsageError
from pipeline.git import Git
from pipeline.incidents import drill_outcome
from pipeline.records import RecordStore, actor, new_record
from pipeline.recordtypes import (
    CheckRecord,
    Deployed,
    DeploymentRecord,
    DrillRecord,
    IntentRecord,
    Kind,
    Record,
)
from pipeline.repo import Settings, load_settings
from pipeline.running import Running, label, resolve, settlement
from pipeline.source import settings_at
from pipeline.targets import DirectoryTarget, PublishResult, Target, make_target
from pipeline.targets.base import reconcile

if TYPE_CHECKING:
    from pipeline.github import GitHubClient

Bundle = dict[str, Any]

__all__ = ["Bundle", "Context", "load_settings", "release_order", "version_of_tag"]


def version_of_tag(tag: str) -> str:
    """``v1.2.0`` for ``support/v1.2.0``."""
    return tag.rsplit("/", 1)[-1]


def release_order(git: Git, agent: str) -> dict[str, int]:
    """Each release tag of ``agent`` with its position in version order (oldest 0)."""
    from pipeline.release import agent_tags

    return {tag: i for i, (_, tag) in enumerate(agent_tags(git, agent))}


@dataclass(slots=True)
class Context:
    git: Git
    root: Path
    settings: Settings
    store: RecordStore
    target: Target
    remote: str = "origin"
    github: GitHubClient | None = None
    by: str = "unknown"
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        git: Git,
        root: Path,
        *,
        remote: str = "origin",
        github: GitHubClient | None = None,
        fetch: bool = True,
    ) -> Context:
        settings = settings_at(git, root, git.rev_parse("HEAD"), "HEAD")
        ctx = cls(
            git=git,
            root=root,
            settings=settings,
            store=RecordStore.for_settings(git, settings, remote),
            target=make_target(settings.deploy.get("target"), root),
            remote=remote,
            github=github,
            by=actor(git),
        )
        if fetch:
            ctx.fetch_records()
        return ctx

    # -- records ---------------------------------------------------------------------------------
    def fetch_records(self) -> None:
        try:
            self.store.fetch()
        except GitError as e:
            self.warnings.append(f"records not fetched ({e.message}): reading the local copy")

    def push_records(self) -> None:
        """Publish the records; a refusal is a warning (they stay local and go with the next push)."""
        try:
            self.store.push()
        except GitError as e:
            self._not_pushed(e)

    def _not_pushed(self, e: GitError, more: str = "") -> None:
        self.warnings.append(
            f"records not pushed: {e.message}; they are kept on the local branch "
            f"{self.store.branch} and go out with the next push{more}"
        )

    def check_lock(self, agent: str, env: str) -> None:
        """LockHeld while another command changes ``agent`` in ``env`` (:mod:`.lock`)."""
        check_lock(self.store, self.target, agent, env)

    @overload
    def record(self, kind: Literal["intent"], **fields: Any) -> IntentRecord: ...
    @overload
    def record(self, kind: Literal["deployment"], **fields: Any) -> DeploymentRecord: ...
    @overload
    def record(self, kind: Literal["check"], **fields: Any) -> CheckRecord: ...
    @overload
    def record(self, kind: Literal["drill"], **fields: Any) -> DrillRecord: ...
    def record(self, kind: Kind, **fields: Any) -> Record:
        """Write a new record of ``kind`` (``fields``: new_record's, checked by the schema).

        Every drill record goes through here, so every drill reports its outcome to the
        incidents: a failure opens one, the next passed drill of its kind resolves it.
        """
        record = new_record(kind, by=self.by, **fields)
        self.store.append(record)
        if record["kind"] == "drill":
            drill_outcome(self.store, self.settings, record)
        return record

    def running(self, agent: str, env: str) -> Running:
        """What runs of ``agent`` in ``env``. An interrupted change is settled with what the
        target reports, and the settlement recorded; when the target cannot tell, a warning
        says so (and the records are left as they are). A change in progress elsewhere is
        not interrupted: LockHeld."""
        self.check_lock(agent, env)
        run = self._resolve(agent, env)
        settle = settlement(run, by=self.by)
        for record in settle:
            self.store.append(record)
        if settle:
            self.warnings.append(str(run.note()))
            run = self._resolve(agent, env)
        elif run.state == "unknown":
            self.warnings.append(str(run.note()))
        return run

    def _resolve(self, agent: str, env: str) -> Running:
        return resolve(
            agent,
            env,
            self.store.list("deployment", agent, env),
            self.store.list("intent", agent, env),
            lambda: self.target.running(agent, env),
        )

    # -- environments and releases ------------------------------------------------------------
    def require_agent(self, agent: str) -> None:
        """UsageError for a name no agent folder and no release tag has: a typo must not read
        as "not released yet" or "not deployed"."""
        import difflib

        from pipeline.layout import discover
        from pipeline.release import release_tags

        known = set(discover(self.root).agents) | {t.agent for t in release_tags(self.git)}
        if agent not in known:
            close = difflib.get_close_matches(agent, sorted(known), n=1)
            raise UsageError(
                f"no agent named {agent!r} (agents: {', '.join(sorted(known)) or 'none'})",
                hint=f"did you mean {close[0]!r}?" if close else None,
            )

    def require_env(self, env: str) -> None:
        if env not in self.settings.environments:
            raise UsageError(
                f"unknown environment {env!r} (environments: {', '.join(self.settings.environments)})",
                hint="list it under deploy.environments in knowngood.yaml",
            )

    def source_env(self, env: str) -> str:
        """The environment whose overlay a bundle for ``env`` is built with: ``env`` itself when
        knowngood.yaml lists it; for a scratch environment (drills), production or the last one."""
        if env in self.settings.environments:
            return env
        envs = self.settings.environments
        return "production" if "production" in envs else envs[-1]

    def resolve_release(self, agent: str, version: str | None) -> str:
        """The tag to deploy: ``<agent>/vX.Y.Z`` for ``version`` (``1.2.0``, ``v1.2.0`` or the
        full tag), or the newest release. Tags missing locally are fetched once."""
        from pipeline.release import latest_tag

        if version is None:
            tag = latest_tag(self.git, agent)
            if tag is None and self._fetch_tags(agent):
                tag = latest_tag(self.git, agent)
            if tag is None:
                raise UsageError(
                    f"{agent} has no release yet (no tag {agent}/vX.Y.Z)",
                    hint="tag its first release: `knowngood release` (after merging)",
                )
            return tag
        from pipeline.release import Version, tag_name

        name = version.removeprefix("refs/tags/")
        if "/" in name:
            if not name.startswith(f"{agent}/"):
                raise UsageError(f"{version!r} is not a release of {agent}")
            name = version_of_tag(name)
        tag = tag_name(agent, Version.parse(name))
        if not self.git.ref_exists(f"refs/tags/{tag}"):
            self._fetch_tags(agent)
        if not self.git.ref_exists(f"refs/tags/{tag}"):
            known = list(release_order(self.git, agent))[-5:]
            raise UsageError(
                f"no release {tag}" + (f" (newest: {', '.join(reversed(known))})" if known else ""),
                hint="list releases with `git tag --list '" + agent + "/v*'`",
            )
        return tag

    def _fetch_tags(self, agent: str) -> bool:
        if self.git.try_run("remote", "get-url", self.remote).code != 0:
            return False
        spec = f"+refs/tags/{agent}/*:refs/tags/{agent}/*"
        return self.git.try_run("fetch", "--quiet", "--no-tags", self.remote, spec).code == 0

    # -- bundles ---------------------------------------------------------------------------------
    def bundle_for_release(self, agent: str, ref: str, env: str) -> Bundle:
        """The bundle of ``ref`` (a tag or commit) for ``env``, built from git objects."""
        source = self.source_env(env)
        bundle = build_bundle(self.git, self.root, agent, ref, source)
        return retarget(bundle, env) if source != env else bundle

    def bundle_for_record(self, deployment: Deployed) -> Bundle:
        """The exact bundle a deployment record published: the copy the directory target keeps,
        else rebuilt from its release (or commit); its content hash must match the record's."""
        agent, env, wanted = deployment["agent"], deployment["env"], deployment["content_hash"]
        if isinstance(self.target, DirectoryTarget):
            stored = self.target.folder(agent, env) / f"{wanted}.json"
            bundle = _read_bundle(stored)
            if bundle is not None and bundle.get("content_hash") == wanted:
                return bundle
        ref = deployment.get("release") or deployment["commit"]
        source = str(deployment.get("details", {}).get("built_for") or self.source_env(env))
        try:
            bundle = build_bundle(self.git, self.root, agent, ref, source)
        except KnowngoodError as e:
            raise DeployError(f"cannot rebuild the bundle of {ref} for {env}: {e.message}") from e
        if source != env:
            bundle = retarget(bundle, env)
        if bundle["content_hash"] != wanted:
            older = as_built_before(bundle, wanted)
            if older is not None:
                return older
            raise DeployError(
                f"the bundle rebuilt from {ref} for {env} has content hash "
                f"{bundle['content_hash'][:12]}, but the deployment recorded {wanted[:12]}",
                hint="the release tag or the environment overlay changed since; redeploy it",
            )
        return bundle

    # -- publishing -------------------------------------------------------------------------------
    def publish(
        self,
        bundle: Mapping[str, Any],
        *,
        why: str,
        previous: Deployed | None,
        rollback: bool = False,
        details: Mapping[str, Any] | None = None,
    ) -> tuple[Deployed, PublishResult]:
        """Publish ``bundle``: record and push the intent, publish, record the deployment
        (whatever the outcome; the caller pushes it). When the target gave no clear answer
        (a timeout, a reset) and cannot tell what runs, the intent stays pending and is what
        is returned: like a deploy killed mid-publish, what runs is unknown until settled."""
        extra: dict[str, Any] = dict(details or {})
        if bundle["env"] not in self.settings.environments:  # a scratch environment (drills)
            extra["built_for"] = self.source_env(bundle["env"])
        what = f"deploy {label(bundle)} to {bundle['env']}"
        intent = self._intent("publish", bundle, what, why, previous, rollback, extra)
        start = time.perf_counter()
        try:
            result = reconcile(self.target, bundle, self.target.publish(bundle))
        except KnowngoodError as e:  # the target cannot be used at all: nothing changed
            result = PublishResult(False, self.target.type, "", e.message, 0.0)
            self._settle(intent, result, start, extra)
            raise
        if result.unsure:
            return intent, result
        return self._settle(intent, result, start, extra), result

    def remove(
        self, deployment: Deployed, *, why: str, details: Mapping[str, Any] | None = None
    ) -> tuple[DeploymentRecord, PublishResult] | None:
        """Make nothing run of ``deployment``'s agent in its environment (a drill putting back
        an environment it found empty), recorded like ``publish``. None when the target cannot
        remove a deployment (only the directory target can)."""
        if not isinstance(self.target, DirectoryTarget):
            return None
        what = f"remove {label(deployment)} from {deployment['env']}"
        extra = dict(details or {})
        intent = self._intent("remove", deployment, what, why, deployment, False, extra)
        start = time.perf_counter()
        result = self.target.remove(deployment["agent"], deployment["env"])
        return self._settle(intent, result, start, extra, removed=True), result

    def _intent(
        self,
        action: str,
        bundle: Mapping[str, Any],
        what: str,
        why: str,
        previous: Deployed | None,
        rollback: bool,
        details: Mapping[str, Any],
    ) -> IntentRecord:
        """Record what is about to change, and push it before anything changes: a process
        that dies after this leaves an intent that ``running`` settles, from any clone. The
        push is the lock: refused (LockHeld) while another change's intent is live."""
        details = {**details, "holder": here()}
        agent, env = bundle["agent"], bundle["env"]
        intent = new_record(
            "intent",
            by=self.by,
            agent=agent,
            env=env,
            what=what,
            why=why,
            outcome="pending",
            action=action,
            release=bundle.get("release"),
            commit=bundle["commit"],
            content_hash=bundle["content_hash"],
            target=self.target.type,
            rollback=rollback,
            previous=previous["id"] if previous else None,
            details=details,
        )
        try:
            self.store.append_admitted(intent, lambda: self.check_lock(agent, env))
        except GitError as e:  # kept locally; no other clone sees this change in progress
            self._not_pushed(e, "; other clones cannot see this change in progress")
        return intent

    def _settle(
        self,
        intent: IntentRecord,
        result: PublishResult,
        start: float,
        details: Mapping[str, Any],
        *,
        removed: bool = False,
    ) -> DeploymentRecord:
        extra = dict(details)
        if not result.ok or result.error:
            extra["error"] = result.error or result.message
        return self.record(
            "deployment",
            agent=intent["agent"],
            env=intent["env"],
            what=intent["what"],
            why=intent["why"],
            outcome=("removed" if removed else "success") if result.ok else "failure",
            intent=intent["id"],
            release=intent.get("release"),
            commit=intent["commit"],
            content_hash=intent["content_hash"],
            target=intent["target"],
            **({"location": result.location} if result.location else {}),
            duration_s=round(time.perf_counter() - start, 6),
            rollback=intent["rollback"],
            previous=intent["previous"],
            **({"details": extra} if extra else {}),
        )


def retarget(bundle: Mapping[str, Any], env: str) -> Bundle:
    """The same bundle addressed to the scratch environment ``env`` (a drill), re-hashed."""
    out = dict(bundle)
    out["env"] = env
    out["content_hash"] = bundle_hash(out)
    verify_bundle(out)
    return out


def _read_bundle(path: Path) -> Bundle | None:
    import json

    try:
        data = json.loads(path.read_bytes())
        verify_bundle(data)
    except (OSError, ValueError, ConfigError):
        return None
    return data if isinstance(data, dict) else None
