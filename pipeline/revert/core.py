"""Revert a merge on the main branch: safeguards, the revert, push or pull request, record, notify.

Order of work, so that every way out leaves nothing half-done:

1. fetch the remote's main (unreachable: GitError, exit 3, nothing changed);
2. check the safeguards against it (a stop: ``skipped``, nothing changed);
3. build the revert as a commit object on the remote main (plumbing, see
   :mod:`pipeline.revert.gitops`: the user's checkout, index and branch are never touched, no
   local branch is created, no hook runs);
4. push it to main. Someone moved main first: fetch, check the safeguards again (another run
   may have reverted it: ``skipped``), rebuild and retry. The remote refused (hook, branch
   protection): push the revert to ``knowngood/revert-<sha12>`` and open a pull request;
5. the revert conflicts: never force, never commit conflict markers. With GitHub: a *draft*
   pull request from ``knowngood/revert-<sha12>`` carrying one empty commit, its body naming the
   conflicting files and the exact commands to finish the revert on that branch (the marker in
   the body keeps later runs from trying again). Without GitHub: ``failed`` with the same
   commands, nothing pushed;
6. record the outcome on the records branch and notify (webhook, comment on the merged PR).
   Problems there are reported in ``notes``; they never undo or fail a revert that landed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import UsageError
from pipeline.git import Git
from pipeline.revert import gitops, report, texts
from pipeline.revert.model import (
    ALREADY_REVERTED,
    DAILY_LIMIT,
    MAIN_BRANCH,
    OPT_OUT,
    MergeInfo,
    RevertOutcome,
    RevertRequest,
    Status,
    branch_name,
    revert_message,
)
from pipeline.revert.safeguards import Stop, check, describe

if TYPE_CHECKING:
    from pipeline.github import GitHubClient
    from pipeline.records import RecordStore
    from pipeline.repo import Settings

ATTEMPTS = 3  # builds of the revert when others keep pushing to main first
_NOTIFY_SKIPS = (OPT_OUT, DAILY_LIMIT)  # skips people must hear about: nothing else will revert it


def revert_merge(
    git: Git,
    root: Path,
    settings: Settings,
    request: RevertRequest,
    *,
    remote: str = "origin",
    github: GitHubClient | None = None,
    records: RecordStore | None = None,
) -> RevertOutcome:
    """Revert ``request.commit`` on ``remote``'s main branch (see the module docstring).

    Raises (nothing changed) UsageError for an unknown commit, the root commit, or a pull
    request asked for without a GitHub client; GitError when the remote cannot be reached;
    GitHubError when open pull requests cannot be listed. Every other ending is an outcome.
    """
    if request.via_pull_request and github is None:
        raise UsageError(
            "a revert pull request needs GitHub: set GITHUB_TOKEN and GITHUB_REPOSITORY",
            hint="or push the revert to the main branch with --push",
        )
    main = settings.main_branch
    gitops.fetch_main(git, remote, main)
    if records is not None:
        records.fetch()
    sha = _resolve(git, request.commit, f"{remote}/{main}")
    info = describe(git, sha)
    if not info.parents:
        raise UsageError(f"{info.short} is the root commit: there is nothing to revert it to")
    run = _Run(git, root, settings, request, remote, main, github, records, info)
    stop = run.safeguards()
    outcome = run.skipped(stop) if stop is not None else run.revert()
    return run.finish(outcome)


def _resolve(git: Git, commit: str, where: str) -> str:
    result = git.try_run("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    if result.code != 0 or not result.stdout.strip():
        raise UsageError(
            f"unknown commit {commit!r}: not in this repository, nor on {where}",
            hint="give the sha of the merge commit on the main branch",
        )
    return result.stdout.strip()


@dataclass
class _Run:
    git: Git
    root: Path
    settings: Settings
    request: RevertRequest
    remote: str
    main: str
    github: GitHubClient | None
    records: RecordStore | None
    info: MergeInfo

    @property
    def where(self) -> str:
        return f"{self.remote}/{self.main}"

    @property
    def tracking(self) -> str:
        return gitops.tracking_ref(self.remote, self.main)

    @property
    def sha(self) -> str:
        return self.info.sha

    def safeguards(self) -> Stop | None:
        return check(
            self.git,
            self.info,
            self.request,
            self.settings,
            tracking=self.tracking,
            where=self.where,
            github=self.github,
            records=self.records,
        )

    # -- outcomes ------------------------------------------------------------------------------
    def outcome(self, status: Status, message: str, **fields: Any) -> RevertOutcome:
        return RevertOutcome(status=status, commit=self.sha, message=message, **fields)

    def skipped(self, stop: Stop) -> RevertOutcome:
        safeguard, why = stop
        return self.outcome("skipped", why, safeguard=safeguard)

    # -- the revert ----------------------------------------------------------------------------
    def revert(self) -> RevertOutcome:
        ident = gitops.identity(self.git)
        message = revert_message(self.info, self.request.reason, self.request.failing_cases)
        for _ in range(ATTEMPTS):
            base = self.git.rev_parse(self.tracking)
            outcome = self._attempt(base, message, ident)
            if outcome is not None:
                return outcome
            # Someone pushed to main first: look again, it may have been this very revert.
            gitops.fetch_main(self.git, self.remote, self.main)
            stop = self.safeguards()
            if stop is not None:
                return self.skipped(stop)
        return self.outcome(
            "failed",
            f"could not push the revert of {self.info.short}: {self.where} moved on under "
            f"{ATTEMPTS} attempts; nothing was changed -- run it again",
        )

    def _attempt(self, base: str, message: str, ident: dict[str, str]) -> RevertOutcome | None:
        """One build and push on the remote main ``base``; None when main moved first."""
        built = gitops.build_revert(self.git, base, self.info, message, ident)
        if built.conflicts:
            return self._conflict(base, built.conflicts, ident)
        if built.empty or built.commit is None:
            return self.skipped(
                (
                    ALREADY_REVERTED,
                    f"reverting {self.info.short} changes nothing on {self.where}: its changes "
                    "are already gone",
                )
            )
        if self.request.via_pull_request:
            return self._pull_request(built.commit, "a pull request was asked for")
        pushed = gitops.push(self.git, self.remote, built.commit, f"refs/heads/{self.main}")
        if pushed.ok:
            self.git.try_run("update-ref", self.tracking, built.commit)
            return self.outcome(
                "reverted",
                f"reverted {self.info.short} ({self.info.subject}): pushed "
                f"{built.commit[:12]} to {self.where}",
                revert_commit=built.commit,
            )
        if pushed.race:
            return None
        refusal = f"{self.remote} refused the push to {self.main}: {pushed.reason}"
        if self.github is None:
            return self.outcome(
                "failed",
                f"{refusal}. Nothing was changed. Without GitHub (GITHUB_TOKEN) no pull request "
                "can be opened; to revert it by hand:\n" + self._by_hand(),
            )
        return self._pull_request(built.commit, refusal)

    def _conflict(
        self, base: str, conflicts: tuple[str, ...], ident: dict[str, str]
    ) -> RevertOutcome:
        files = ", ".join(conflicts)
        why = (
            f"reverting {self.info.short} conflicts with later changes on {self.where} in: {files}"
        )
        if self.github is None:
            return self.outcome(
                "failed",
                f"{why}. Nothing was changed (a conflicted revert is never forced). Resolve it by "
                "hand:\n" + self._by_hand(conflicts),
                conflicts=list(conflicts),
            )
        placeholder = gitops.commit_tree(
            self.git,
            f"{base}^{{tree}}",
            base,
            texts.placeholder_message(self.info, conflicts),
            ident,
        )
        return self._pull_request(placeholder, why, conflicts=conflicts)

    def _pull_request(
        self, commit: str, why: str, *, conflicts: tuple[str, ...] = ()
    ) -> RevertOutcome:
        assert self.github is not None
        from pipeline.github import GitHubError

        branch = branch_name(self.sha)
        ref = f"refs/heads/{branch}"
        pushed = gitops.push(self.git, self.remote, commit, ref, force=True)
        if not pushed.ok:
            return self.outcome(
                "failed",
                f"{why}; pushing the branch {branch} for a pull request failed too: "
                f"{pushed.reason}. Nothing was changed; to revert it by hand:\n"
                + self._by_hand(conflicts),
                conflicts=list(conflicts),
            )
        title = f'Revert "{self.info.subject}"' + (" (conflicts to resolve)" if conflicts else "")
        try:
            pr = self.github.create_pull_request(
                title=title,
                head=branch,
                base=self.main,
                body=texts.pull_request_body(self.info, self.request, why, self.remote, conflicts),
                draft=bool(conflicts),
            )
        except GitHubError as e:
            gitops.delete_remote_branch(self.git, self.remote, ref)
            return self.outcome(
                "failed",
                f"{why}; opening the pull request failed: {e}. The branch {branch} was removed "
                "again; to revert it by hand:\n" + self._by_hand(conflicts),
                conflicts=list(conflicts),
            )
        return self.outcome(
            "pull_request",
            f"opened {pr.html_url} to revert {self.info.short} ({self.info.subject}): {why}",
            branch=branch,
            branch_commit=commit,
            pr_url=pr.html_url,
            conflicts=list(conflicts),
        )

    def _by_hand(self, conflicts: tuple[str, ...] = ()) -> str:
        return texts.manual_commands(self.info, self.remote, self.main, conflicts)

    # -- record and notify ---------------------------------------------------------------------
    def finish(self, outcome: RevertOutcome) -> RevertOutcome:
        agents = report.agents_of(self.git, self.root, self.info)
        agent = self.request.agent or (agents[0] if agents else report.NO_AGENT)
        env = self.request.env or (
            self.settings.environments[-1] if self.settings.environments else "production"
        )
        if self.records is not None and outcome.safeguard != MAIN_BRANCH:
            report.write_record(
                self.records, self.info, self.request, outcome, agent=agent, env=env, agents=agents
            )
        notable = outcome.status != "skipped" or outcome.safeguard in _NOTIFY_SKIPS
        if self.request.notify and notable:
            from pipeline.notify import notify

            event = report.event(
                self.info, self.request, outcome, agent=agent, env=env, where=self.where
            )
            github = self.github if self.request.pr_comment else None
            told = notify(self.settings, event, github=github, commit=self.sha)
            outcome.notes.extend(f"notification: {e}" for e in told.errors)
        return outcome
