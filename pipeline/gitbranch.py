"""A branch of data files written with git plumbing, safely shared by concurrent writers.

Writes never touch the working tree, the index or the checked-out branch: blobs are hashed in,
a tree is built in a throwaway index (``GIT_INDEX_FILE``), committed with ``commit-tree`` and
the branch moved with ``update-ref NEW OLD`` -- a compare-and-swap. A writer that loses the race
rebuilds its commit on the new tip and tries again, so no write is lost.

Pushing follows the same idea: when the remote has moved on (non-fast-forward), fetch it,
replay the local-only commits' file changes on top of it (the files are new, so they never
conflict; a file written on both sides takes the local version) and push again, a bounded
number of times.
"""

from __future__ import annotations

import random
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import GitError
from pipeline.git import Git, Pushed, commit_env, git_reason, push_refs, remote_hint
from pipeline.words import plural

Entry = tuple[str, str, str]  # (mode, blob, path); mode "0" deletes the path


@dataclass(frozen=True, slots=True)
class PushResult:
    pushed: bool  # False: nothing new to push, or no remote (a local-only repository)
    attempts: int
    commit: str | None
    message: str


class DataBranch:
    """Files on ``branch`` of the repository ``git`` works in, published to ``remote``."""

    def __init__(
        self,
        git: Git,
        branch: str,
        remote: str = "origin",
        *,
        push_attempts: int = 8,
        cas_attempts: int = 100,
    ) -> None:
        self.git = git
        self.branch = branch
        self.remote = remote
        self.ref = f"refs/heads/{branch}"
        self.tracking_ref = f"refs/remotes/{remote}/{branch}"
        self.push_attempts = push_attempts
        self.cas_attempts = cas_attempts
        self._identity: dict[str, str] | None = None

    # -- reading ---------------------------------------------------------------------------
    def resolve(self, ref: str) -> str | None:
        result = self.git.try_run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        return result.stdout.strip() if result.code == 0 else None

    def tip(self) -> str | None:
        """What readers read: the local branch or, in a clone that never wrote or fetched it
        explicitly, the remote-tracking branch a plain ``git clone``/``git fetch`` brought in."""
        return self.resolve(self.ref) or self.resolve(self.tracking_ref)

    def ls(self, prefix: str) -> list[tuple[str, str]]:
        """``(path, blob)`` of every file under the folder ``prefix`` (recursive)."""
        tip = self.tip()
        if tip is None:
            return []
        out = self.git.run(
            "ls-tree", "--full-tree", "-r", "-z", tip, "--", prefix.rstrip("/") + "/"
        )
        files = []
        for line in filter(None, out.split("\0")):
            meta, path = line.split("\t", 1)
            files.append((path, meta.split()[2]))
        return files

    def read(self, path: str) -> bytes | None:
        tip = self.tip()
        return None if tip is None else self.git.show(tip, path)

    def read_blobs(self, blobs: Sequence[str]) -> list[bytes]:
        return cat_blobs(self.git, blobs)

    # -- writing ---------------------------------------------------------------------------
    def write(self, files: Mapping[str, str], message: str) -> str:
        """Commit ``files`` (path -> text) on the local branch; returns the new commit sha."""
        entries = self._hash(files)
        for attempt in range(self.cas_attempts):
            old = self.resolve(self.ref)
            # The first write in a clone builds on the remote's records.
            new = self._commit_on(old or self.resolve(self.tracking_ref), entries, message)
            if self._cas(new, old):
                return new
            _backoff(attempt)
        raise GitError(
            f"could not update {self.branch}: it kept changing under {self.cas_attempts} attempts",
            hint="another process keeps writing to it; try again",
        )

    def write_admitted(
        self, files: Mapping[str, str], message: str, admit: Callable[[], None]
    ) -> PushResult:
        """Write ``files`` and publish them on exactly the remote branch ``admit`` accepted: a
        compare-and-swap on the remote. Fetch, ``admit()`` (it reads the branch and raises to
        refuse), commit on the tip, push without replaying; when another push got there first,
        fetch and ask ``admit`` again. The files reach the local branch once the remote has
        them; when the remote cannot be reached or refuses, they are written locally anyway (as
        :meth:`write` would) and GitError says why. Without a remote: :meth:`write`."""
        if not self.has_remote():
            return PushResult(
                False, 0, self.write(files, message), f"no remote {self.remote!r}: kept locally"
            )
        entries = self._hash(files)
        try:
            for attempt in range(1, self.push_attempts + 1):
                self.fetch()
                admit()
                new = self._commit_on(self.tip(), entries, message)
                pushed = push_refs(self.git, self.remote, [f"{new}:{self.ref}"])
                if pushed.ok:
                    self.git.try_run("update-ref", self.tracking_ref, new)
                    self._integrate()  # the local branch moves to it, or replays its own on it
                    return PushResult(True, attempt, new, f"pushed {self.branch} to {self.remote}")
                if not pushed.race:
                    raise self._refused(pushed, len(self.unpushed()) + len(files))
                _backoff(attempt)
            raise self._behind()
        except GitError:
            self.write(files, message)
            raise

    def _hash(self, files: Mapping[str, str]) -> list[Entry]:
        return [
            ("100644", self.git.run("hash-object", "-w", "--stdin", input=text).strip(), path)
            for path, text in files.items()
        ]

    def _commit_on(self, base: str | None, entries: Sequence[Entry], message: str) -> str:
        with self._index(base) as index:
            index.update(entries)
            tree = index.write_tree()
        return self._commit_tree(tree, [base] if base else [], message)

    def _cas(self, new: str, old: str | None) -> bool:
        expected = old or "0" * len(new)  # all zeros: the branch must not exist yet
        return self.git.try_run("update-ref", "-m", "knowngood", self.ref, new, expected).code == 0

    def _commit_tree(
        self, tree: str, parents: Sequence[str], message: str, env: Mapping[str, str] | None = None
    ) -> str:
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        return self.git.run(*args, input=message, env={**self._commit_env(), **(env or {})}).strip()

    def _commit_env(self) -> dict[str, str]:
        """knowngood's identity, unless git has one configured."""
        if self._identity is None:
            configured = all(
                self.git.try_run("config", key).stdout.strip()
                for key in ("user.name", "user.email")
            )
            self._identity = {} if configured else commit_env()
        return self._identity

    @contextmanager
    def _index(self, base: str | None) -> Iterator[_TempIndex]:
        with tempfile.TemporaryDirectory(prefix="knowngood-index-") as tmp:
            index = _TempIndex(self.git, Path(tmp) / "index")
            index.read_tree(base)
            yield index

    # -- remote ----------------------------------------------------------------------------
    def has_remote(self) -> bool:
        return self.git.try_run("remote", "get-url", self.remote).code == 0

    def fetch(self) -> bool:
        """Bring the remote branch in; local-only commits are replayed on top of it.

        False when there is no remote or the remote has no such branch yet.
        """
        if not self.has_remote():
            return False
        refspec = f"+{self.ref}:{self.tracking_ref}"
        for attempt in range(3):  # another fetch in this clone may hold the ref's lock
            result = self.git.try_run("fetch", "--no-tags", "--quiet", self.remote, refspec)
            if result.code == 0 or "lock" not in result.stderr:
                break
            _backoff(attempt + 3)
        if result.code != 0:
            if "couldn't find remote ref" in result.stderr:
                return False
            raise GitError(
                f"could not fetch {self.branch} from {self.remote}: {git_reason(result.stderr)}",
                cmd=["git", "fetch", self.remote, self.branch],
                code=result.code,
                stderr=result.stderr,
                hint=remote_hint(self.remote),
            )
        self._integrate()
        return True

    def unpushed(self) -> list[str]:
        """Paths written on the local branch that the remote-tracking branch lacks."""
        local = self.resolve(self.ref)
        if local is None:
            return []
        remote = self.resolve(self.tracking_ref)
        args = (
            ["diff", "--name-only", "-z", "--no-renames", remote, local]
            if remote
            else ["ls-tree", "--full-tree", "-r", "-z", "--name-only", local]
        )
        return [p for p in self.git.run(*args).split("\0") if p]

    def push(self) -> PushResult:
        """Publish the local branch. A non-fast-forward rejection is repaired (fetch, replay)
        and retried; any other refusal raises GitError with the remote's reason."""
        if not self.has_remote():
            return PushResult(
                False, 0, self.resolve(self.ref), f"no remote {self.remote!r}: kept locally"
            )
        for attempt in range(1, self.push_attempts + 1):
            local = self.resolve(self.ref)
            if local is None:
                return PushResult(
                    False, attempt - 1, None, f"nothing to push: no local {self.branch}"
                )
            if local == self.resolve(self.tracking_ref):
                return PushResult(
                    False, attempt - 1, local, f"{self.remote} already has {self.branch}"
                )
            pushed = push_refs(self.git, self.remote, [f"{local}:{self.ref}"])
            if pushed.ok:
                self.git.try_run("update-ref", self.tracking_ref, local)
                return PushResult(True, attempt, local, f"pushed {self.branch} to {self.remote}")
            if pushed.race:
                self.fetch()
                _backoff(attempt)
                continue
            raise self._refused(pushed, len(self.unpushed()))
        raise self._behind()

    def _refused(self, pushed: Pushed, files: int) -> GitError:
        return GitError(
            f"{self.remote} refused {self.branch}: {pushed.reason}",
            cmd=["git", "push", self.remote, self.branch],
            code=pushed.code,
            stderr=pushed.stderr,
            hint=f"nothing is lost: {_stay(files)} on the local branch {self.branch} "
            "and the next push sends them; fix the remote's rule or your permissions",
        )

    def _behind(self) -> GitError:
        return GitError(
            f"could not push {self.branch} to {self.remote}: still behind after "
            f"{plural(self.push_attempts, 'attempt')}",
            hint="others push to it continuously; try again",
        )

    def _integrate(self) -> None:
        """Make the local branch contain the remote-tracking branch."""
        for attempt in range(self.cas_attempts):
            remote = self.resolve(self.tracking_ref)
            local = self.resolve(self.ref)
            if (
                remote is None
                or local == remote
                or (local is not None and self.git.is_ancestor(remote, local))
            ):
                return
            new = (
                remote
                if local is None or self.git.is_ancestor(local, remote)
                else self._replay(remote, local)
            )
            if self._cas(new, local):
                return
            _backoff(attempt)
        raise GitError(
            f"could not update {self.branch}: it kept changing under {self.cas_attempts} attempts"
        )

    def _replay(self, onto: str, local: str) -> str:
        """The commits of ``onto..local`` re-applied on ``onto``: same files, messages, authors."""
        log = self.git.run(
            "log",
            "-z",
            "--reverse",
            "--date=raw",
            "--format=%H%n%P%n%an%n%ae%n%ad%n%B",
            f"{onto}..{local}",
        )
        new = onto
        with self._index(onto) as index:
            for entry in filter(None, log.split("\0")):
                sha, parents, name, email, date, message = entry.split("\n", 5)
                first_parent = parents.split()[0] if parents.strip() else None
                diff = (
                    ["diff-tree", "-r", "-z", "--no-renames", "--raw", first_parent, sha]
                    if first_parent
                    else ["diff-tree", "--root", "-r", "-z", "--no-renames", "--raw", sha]
                )
                index.update(_raw_diff(self.git.run(*diff)))
                author = {
                    "GIT_AUTHOR_NAME": name,
                    "GIT_AUTHOR_EMAIL": email,
                    "GIT_AUTHOR_DATE": date,
                }
                new = self._commit_tree(index.write_tree(), [new], message, env=author)
        return new


def cat_blobs(git: Git, blobs: Sequence[str]) -> list[bytes]:
    """Contents of many blobs with one ``git cat-file --batch``."""
    if not blobs:
        return []
    cmd = ["git", "cat-file", "--batch"]
    proc = subprocess.run(
        cmd,
        cwd=git.cwd,
        env=git.env,
        capture_output=True,
        check=False,
        input="".join(f"{b}\n" for b in blobs).encode(),
    )
    if proc.returncode != 0:
        raise GitError(
            "git cat-file --batch failed",
            cmd=cmd,
            code=proc.returncode,
            stderr=proc.stderr.decode(errors="replace"),
        )
    out, pos, contents = proc.stdout, 0, []
    for blob in blobs:
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].split()
        if len(header) != 3:
            raise GitError(f"object {blob} is missing from {git.cwd}", cmd=cmd)
        size = int(header[2])
        contents.append(out[header_end + 1 : header_end + 1 + size])
        pos = header_end + 1 + size + 1
    return contents


class _TempIndex:
    """A throwaway index file, never the repository's own."""

    def __init__(self, git: Git, path: Path) -> None:
        self.git = git
        self.env = {"GIT_INDEX_FILE": str(path)}

    def read_tree(self, base: str | None) -> None:
        self.git.run("read-tree", *([base] if base else ["--empty"]), env=self.env)

    def update(self, entries: Sequence[Entry]) -> None:
        if entries:
            lines = "".join(f"{mode} {blob}\t{path}\n" for mode, blob, path in entries)
            self.git.run("update-index", "--index-info", input=lines, env=self.env)

    def write_tree(self) -> str:
        return self.git.run("write-tree", env=self.env).strip()


def _raw_diff(out: str) -> list[Entry]:
    """``git diff-tree -z --raw`` output as index entries."""
    fields = out.split("\0")
    entries: list[Entry] = []
    i = 0
    while i < len(fields) - 1:
        meta = fields[i]
        if not meta.startswith(":"):  # the commit id that --root output starts with
            i += 1
            continue
        _, new_mode, _, new_blob, status = meta[1:].split(" ")
        path = fields[i + 1]
        entries.append(
            ("0", "0" * len(new_blob), path) if status == "D" else (new_mode, new_blob, path)
        )
        i += 2
    return entries


def _backoff(attempt: int) -> None:
    """Short and jittered, so writers racing on one ref do not retry in lockstep."""
    time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** min(attempt, 6))))


def _stay(n: int) -> str:
    return f"{plural(n, 'file')} {'stays' if n == 1 else 'stay'}"
