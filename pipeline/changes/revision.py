"""Read two revisions of a knowngood repository straight from git objects (never a checkout).

Every git command runs in the knowngood root, so a root that is a subfolder of the git
repository is handled by git itself: ``git diff --relative`` and ``git ls-tree`` (which lists
relative to the current directory) both restrict to the root and print root-relative paths.

A whole diff costs a fixed number of processes, however many agents the repository holds:
one ``rev-parse`` for both revisions, one ``diff --raw``, one ``ls-tree`` per side, and one
``cat-file --batch`` for every blob that is read.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.changes.model import MAX_DEPTH, FileChange, FileStatus, Problem, Revision, Side
from pipeline.errors import GitError, UsageError
from pipeline.git import Git
from pipeline.loading import MAX_FILE_BYTES, parse
from pipeline.repo import CONFIG_FILE, DATA_SUFFIXES, JUDGE_DIR

FETCH_HINT = (
    "fetch it first (in GitHub Actions, actions/checkout needs `fetch-depth: 0` "
    "to see the base branch and tags) or check the name"
)
_STATUS: dict[str, FileStatus] = {"A": "added", "D": "deleted"}
_FILE_MODES = ("100644", "100755")


def at_root(git: Git, root: Path) -> Git:
    """A Git running in ``root`` (the knowngood root) with ``git``'s environment."""
    if git.cwd.resolve() == root.resolve():
        return git
    return Git(root, env=git.env)


def resolve(git: Git, base: str, head: str) -> tuple[Revision, Revision]:
    """Both revisions as commits, in one process; a UsageError naming the one that is unknown."""
    for rev in (base, head):
        if not rev or rev.startswith("-"):
            raise UsageError(f"invalid revision {rev!r}", hint="pass a branch, tag or commit")
    result = git.try_run("rev-parse", "--show-prefix", f"{base}^{{commit}}", f"{head}^{{commit}}")
    lines = result.stdout.splitlines()
    if result.code == 0 and len(lines) == 3:
        return Revision(base, lines[1].strip()), Revision(head, lines[2].strip())
    if not git.is_repo():
        raise git.not_a_repository(["rev-parse"])
    for rev in (base, head):
        try:
            git.rev_parse(rev)
        except GitError as e:
            if rev == "HEAD":  # a repository with no commit yet: rev_parse says so
                raise
            raise UsageError(f"unknown revision {rev!r}", hint=FETCH_HINT) from e
    raise UsageError(f"cannot resolve {base!r} and {head!r}: {result.stderr.strip()}")


def changed_files(git: Git, base: str, head: str) -> list[FileChange]:
    """Files that differ under the knowngood root (renames count as delete + add)."""
    out = git.run(
        "diff",
        "--raw",
        "-z",
        "--relative",
        "--no-renames",
        "--no-abbrev",
        "--no-ext-diff",
        base,
        head,
    )
    fields = out.split("\0")
    changes: list[FileChange] = []
    for i in range(0, len(fields) - 1, 2):
        meta, path = fields[i], fields[i + 1]
        if not meta.startswith(":"):
            break
        status = meta.split()[-1][:1]
        changes.append(FileChange(path, _STATUS.get(status, "modified")))
    return sorted(changes, key=lambda c: c.path)


@dataclass(frozen=True, slots=True)
class Entry:
    sha: str
    mode: str
    size: int


def list_tree(git: Git, commit: str, paths: Iterable[str]) -> dict[str, Entry]:
    """Root-relative path -> blob entry for every file under ``paths`` at ``commit``."""
    out = git.run("ls-tree", "-r", "-l", "-z", commit, "--", *paths)
    files: dict[str, Entry] = {}
    for record in out.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, kind, sha, size = meta.split()
        if kind == "blob":
            files[path] = Entry(sha, mode, int(size) if size.isdigit() else 0)
    return files


def read_blobs(git: Git, shas: Iterable[str]) -> dict[str, bytes]:
    """Contents of many blobs with one ``git cat-file --batch``."""
    wanted = sorted(set(shas))
    if not wanted:
        return {}
    cmd = ["git", "cat-file", "--batch"]
    try:
        proc = subprocess.run(
            cmd,
            cwd=git.cwd,
            env=git.env,
            input="\n".join(wanted).encode() + b"\n",
            capture_output=True,
            check=False,
        )
    except FileNotFoundError as e:
        raise GitError("git is not installed (or not on PATH)", cmd=cmd) from e
    if proc.returncode != 0:
        raise GitError(
            "git cat-file --batch failed",
            cmd=cmd,
            code=proc.returncode,
            stderr=proc.stderr.decode("utf-8", "replace"),
        )
    data = proc.stdout
    blobs: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[1] == b"missing":
            continue
        size = int(header[2])
        blobs[header[0].decode()] = data[pos : pos + size]
        pos += size + 1  # the content is followed by a newline
    return blobs


# -- one side of the diff ---------------------------------------------------------------------


_MISSING = object()
ParseCache = dict[tuple[str, bool], tuple[Any, tuple[str, int | None] | None]]


@dataclass(slots=True)
class Snapshot:
    """The files of one revision and a parsed-data cache; problems collected on the way."""

    side: Side
    files: dict[str, Entry]
    blobs: Mapping[str, bytes]
    parsed_blobs: ParseCache = field(default_factory=dict)  # blob -> data; share it between sides
    problems: dict[str, Problem] = field(default_factory=dict)  # path -> first problem
    _data: dict[str, Any] = field(default_factory=dict)
    _text: dict[str, str | None] = field(default_factory=dict)
    _by_agent: dict[str, list[str]] | None = None

    def agent_files(self, agent: str) -> list[str]:
        """Paths under agents/<agent>/ (an index built on first use)."""
        if self._by_agent is None:
            self._by_agent = {}
            for path in self.files:
                parts = path.split("/", 2)
                if len(parts) == 3 and parts[0] == "agents":
                    self._by_agent.setdefault(parts[1], []).append(path)
        return self._by_agent.get(agent, [])

    def exists(self, path: str) -> bool:
        return path in self.files

    def text(self, path: str) -> str | None:
        """The file as text, or None (missing, or unreadable: a problem is recorded)."""
        if path in self._text:
            return self._text[path]
        self._text[path] = text = self._read(path)
        return text

    def data(self, path: str) -> Any:
        """Parsed YAML/JSON data, or None (missing, or unparseable: a problem is recorded)."""
        if path not in self._data:
            self._data[path] = self._parse(path)
        value = self._data[path]
        return None if value is _MISSING else value

    def parsed(self, path: str) -> bool:
        """Whether ``path`` was already parsed (the diff looked at it)."""
        return path in self._data

    def _problem(self, path: str, message: str, line: int | None = None) -> None:
        self.problems.setdefault(path, Problem(self.side, path, message, line))

    def _read(self, path: str) -> str | None:
        entry = self.files.get(path)
        if entry is None:
            return None
        if entry.mode not in _FILE_MODES:
            self._problem(path, "not a regular file (symlink or submodule); skipped")
            return None
        if entry.size > MAX_FILE_BYTES:
            self._problem(
                path, f"file is {entry.size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit"
            )
            return None
        raw = self.blobs.get(entry.sha)
        if raw is None:
            self._problem(path, "blob missing from the object database")
            return None
        if b"\0" in raw[:8192]:
            self._problem(path, "file is binary (contains NUL bytes)")
            return None
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            self._problem(
                path,
                f"file is not valid UTF-8 (byte 0x{raw[e.start]:02x})",
                raw.count(b"\n", 0, e.start) + 1,
            )
            return None

    def _parse(self, path: str) -> Any:
        entry = self.files.get(path)
        key = (entry.sha, path.endswith(".json")) if entry else None
        if key is not None and key in self.parsed_blobs:  # the same blob, e.g. on the other side
            value, problem = self.parsed_blobs[key]
        else:
            value, problem = self._parse_text(path)
            if key is not None and path not in self.problems:  # not unreadable for other reasons
                self.parsed_blobs[key] = (value, problem)
        if problem is not None:
            self._problem(path, *problem)
        return value

    def _parse_text(self, path: str) -> tuple[Any, tuple[str, int | None] | None]:
        text = self.text(path)
        if text is None:
            return _MISSING, None
        if not text.strip():
            return _MISSING, ("file is empty", 1)
        doc, findings = parse(text, Path(path), path)
        if doc is None:
            first = findings[0] if findings else None
            return _MISSING, ((first.message, first.line) if first else ("cannot parse", None))
        shape = _unusable(doc.data)
        if shape is not None:
            return _MISSING, (shape, None)
        return doc.data, None


def _unusable(data: Any, path: frozenset[int] = frozenset()) -> str | None:
    """Why data cannot be compared: a container holding itself (a YAML alias to an ancestor),
    or nesting deeper than MAX_DEPTH. None when it is fine."""
    if not isinstance(data, dict | list):
        return None
    if id(data) in path:
        return "YAML aliases form a cycle"
    if len(path) >= MAX_DEPTH:
        return f"nests deeper than {MAX_DEPTH} levels"
    inner = path | {id(data)}
    for value in data.values() if isinstance(data, dict) else data:
        problem = _unusable(value, inner)
        if problem is not None:
            return problem
    return None


# -- which agent a path belongs to ------------------------------------------------------------


def agent_of(path: str) -> str | None:
    """``agents/<a>/...`` and ``evals/<a>/...`` belong to agent ``a``."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[0] in ("agents", "evals") and parts[1] != JUDGE_DIR:
        return parts[1]
    return None


def is_repo_wide(path: str) -> bool:
    """knowngood.yaml, schemas/** and evals/_judge/** affect every agent."""
    return path == CONFIG_FILE or path.startswith(("schemas/", f"evals/{JUDGE_DIR}/"))


def agent_names(files: Iterable[str]) -> set[str]:
    """Agents present in a listing: folders agents/<a>/ with an agent.yaml (or .yml/.json)."""
    configs = {f"agent{s}" for s in DATA_SUFFIXES}
    names: set[str] = set()
    for path in files:
        parts = path.split("/")
        if (
            len(parts) == 3
            and parts[0] == "agents"
            and parts[2] in configs
            and not parts[1].startswith(".")
        ):
            names.add(parts[1])
    return names


def config_path(files: Mapping[str, Any], agent: str) -> str | None:
    for suffix in DATA_SUFFIXES:
        path = f"agents/{agent}/agent{suffix}"
        if path in files:
            return path
    return None
