"""Publish a bundle to the deploy target of knowngood.yaml (``deploy.target``).

Three targets, one contract: ``publish(bundle) -> PublishResult``. A target that runs and says
no (a command that exits non-zero, an HTTP status outside 2xx, a timeout, an unreachable
host) gives ``PublishResult(ok=False, message=...)``; ``result.raise_for_failure()`` turns that
into a DeployError (exit 3) once the caller has recorded it. Only a target that cannot be used
at all (an unknown type, an unset secret, an invalid bundle) raises DeployError at once.
Nothing else escapes.

- ``directory``: ``<path>/<env>/<agent>/<content_hash>.json`` written atomically, then
  ``current.json`` flipped atomically to it (a symlink swapped with ``os.replace``; a file
  replace where symlinks are not available). Earlier bundles are kept for rollbacks.
- ``command``: the user's argv with the bundle's path appended, KNOWNGOOD_* variables set;
  its exit code decides, its output is captured and shown on failure.
- ``http``: POST of the bundle's canonical JSON, signed ``X-Knowngood-Signature:
  sha256=<hex HMAC-SHA256 of the exact body>`` with the secret in ``$secret_env``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any, Protocol

from pipeline import __version__
from pipeline.bundle import canonical_json, verify_bundle
from pipeline.errors import ConfigError, DeployError
from pipeline.git import quote_args
from pipeline.redaction import secret_env

DEFAULT_DIRECTORY = ".knowngood/deployments"
COMMAND_TIMEOUT_S = 300.0
HTTP_TIMEOUT_S = 30.0
MAX_OUTPUT_CHARS = 64_000  # kept from a command's output
SHOWN_OUTPUT_CHARS = 2_000  # of it, shown in the failure message

__all__ = [
    "CommandTarget",
    "DirectoryTarget",
    "HttpTarget",
    "PublishResult",
    "Target",
    "make_target",
    "version_of",
]


@dataclass(frozen=True, slots=True)
class PublishResult:
    ok: bool
    target: str  # directory | command | http
    location: str  # the bundle file, the command line, or the URL (without credentials)
    message: str
    duration_s: float
    output: str = ""  # what a command printed, or the start of an HTTP response body

    def raise_for_failure(self) -> PublishResult:
        if not self.ok:
            raise DeployError(f"{self.target} target: {self.message}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "target": self.target,
            "location": self.location,
            "message": self.message,
            "duration_s": self.duration_s,
        }


class Target(Protocol):
    type: str

    def publish(self, bundle: Mapping[str, Any]) -> PublishResult: ...


def make_target(
    config: Mapping[str, Any] | None, root: Path, *, timeout_s: float | None = None
) -> Target:
    """The target described by knowngood.yaml ``deploy.target`` (default: a directory)."""
    config = config or {"type": "directory", "path": DEFAULT_DIRECTORY}
    kind = config.get("type")
    try:
        if kind == "directory":
            path = Path(config.get("path") or DEFAULT_DIRECTORY)
            return DirectoryTarget(path if path.is_absolute() else root / path)
        if kind == "command":
            return CommandTarget(
                list(config["command"]), cwd=root, timeout_s=timeout_s or COMMAND_TIMEOUT_S
            )
        if kind == "http":
            return HttpTarget(
                str(config["url"]), str(config["secret_env"]), timeout_s=timeout_s or HTTP_TIMEOUT_S
            )
    except (KeyError, TypeError) as e:
        raise DeployError(
            f"deploy.target of type {kind!r} is missing {e}",
            hint="see knowngood.yaml deploy.target",
        ) from e
    raise DeployError(f"unknown deploy.target type {kind!r}", hint="use directory, command or http")


def version_of(bundle: Mapping[str, Any]) -> str:
    """``1.2.0`` for release ``support/v1.2.0``; else the release name, else the short commit."""
    release = bundle.get("release")
    if isinstance(release, str):
        tail = release.rsplit("/", 1)[-1]
        return tail[1:] if tail.startswith("v") and tail[1:2].isdigit() else release
    return str(bundle["commit"])[:12]


def _checked(bundle: Mapping[str, Any]) -> None:
    try:
        verify_bundle(bundle)
    except ConfigError as e:
        raise DeployError(f"refusing to publish: {e.message}") from e


def _pretty(bundle: Mapping[str, Any]) -> bytes:
    return (json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


# -- directory -----------------------------------------------------------------------------------


class DirectoryTarget:
    type = "directory"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def folder(self, agent: str, env: str) -> Path:
        return self.path / env / agent

    def publish(self, bundle: Mapping[str, Any]) -> PublishResult:
        _checked(bundle)
        start = time.perf_counter()
        folder = self.folder(bundle["agent"], bundle["env"])
        target = folder / f"{bundle['content_hash']}.json"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _atomic_write(target, _pretty(bundle))
            _flip(folder / "current.json", target)
        except OSError as e:
            return PublishResult(
                False,
                self.type,
                str(target),
                f"could not write {target}: {e.strerror or e}",
                _since(start),
            )
        what = bundle.get("release") or str(bundle["commit"])[:12]
        return PublishResult(
            True,
            self.type,
            str(target),
            f"{bundle['agent']} {what} is current in {folder}",
            _since(start),
        )

    def read_current(self, agent: str, env: str) -> dict[str, Any] | None:
        """The bundle ``current.json`` points at, or None before the first deploy."""
        try:
            data: dict[str, Any] = json.loads(
                (self.folder(agent, env) / "current.json").read_bytes()
            )
        except FileNotFoundError:
            return None
        return data

    def bundles(self, agent: str, env: str) -> list[Path]:
        """Every bundle published for ``agent`` in ``env``, newest first."""
        folder = self.folder(agent, env)
        if not folder.is_dir():
            return []
        found = [
            p for p in folder.glob("*.json") if p.name != "current.json" and not p.is_symlink()
        ]
        return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _flip(current: Path, target: Path) -> None:
    """Point ``current`` at ``target`` in one atomic step: readers see the old or the new."""
    tmp = current.with_name(f".{current.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        os.symlink(target.name, tmp)
    except (OSError, NotImplementedError):  # no symlinks here (Windows without privilege)
        _atomic_write(current, target.read_bytes())
        return
    try:
        os.replace(tmp, current)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(current.parent)


def _fsync_dir(path: Path) -> None:
    if sys.platform == "win32":
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- command ------------------------------------------------------------------------------------


class CommandTarget:
    type = "command"

    def __init__(
        self, argv: Sequence[str], *, cwd: Path, timeout_s: float = COMMAND_TIMEOUT_S
    ) -> None:
        if not argv:
            raise DeployError("deploy.target command is empty", hint="e.g. command: [./deploy.sh]")
        self.argv = list(argv)
        self.cwd = Path(cwd)
        self.timeout_s = timeout_s

    def publish(self, bundle: Mapping[str, Any]) -> PublishResult:
        _checked(bundle)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="knowngood-deploy-") as tmp:
            path = (
                Path(tmp)
                / f"{bundle['agent']}-{bundle['env']}-{str(bundle['content_hash'])[:12]}.json"
            )
            path.write_bytes(_pretty(bundle))
            argv = [*self.argv, str(path)]
            location = quote_args(argv[:-1])
            env = {
                **os.environ,
                "KNOWNGOOD_AGENT": str(bundle["agent"]),
                "KNOWNGOOD_ENV": str(bundle["env"]),
                "KNOWNGOOD_VERSION": version_of(bundle),
                "KNOWNGOOD_RELEASE": str(bundle.get("release") or ""),
                "KNOWNGOOD_COMMIT": str(bundle["commit"]),
                "KNOWNGOOD_CONTENT_HASH": str(bundle["content_hash"]),
                "KNOWNGOOD_BUNDLE": str(path),
            }
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=self.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=sys.platform != "win32",
                )
            except OSError as e:
                return PublishResult(
                    False,
                    self.type,
                    location,
                    f"cannot run {location}: {e.strerror or e} (in {self.cwd})",
                    _since(start),
                )
            timed_out = False
            try:
                raw, _ = proc.communicate(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_tree(proc)
                raw, _ = proc.communicate()
        output = raw.decode("utf-8", errors="replace")[-MAX_OUTPUT_CHARS:]
        if timed_out:
            message = f"{location} timed out after {self.timeout_s:g}s (killed){_tail(output)}"
            return PublishResult(False, self.type, location, message, _since(start), output)
        if proc.returncode != 0:
            message = f"{location} exited {proc.returncode}{_tail(output)}"
            return PublishResult(False, self.type, location, message, _since(start), output)
        return PublishResult(
            True, self.type, location, f"{location} exited 0", _since(start), output
        )


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything it started (they could hold its output pipe open)."""
    if sys.platform != "win32":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _tail(output: str) -> str:
    text = output.strip()
    if not text:
        return ""
    if len(text) > SHOWN_OUTPUT_CHARS:
        text = "..." + text[-SHOWN_OUTPUT_CHARS:]
    return ":\n" + "\n".join(f"  | {line}" for line in text.splitlines())


# -- http ----------------------------------------------------------------------------------------


class HttpTarget:
    type = "http"

    def __init__(self, url: str, secret_env: str, *, timeout_s: float = HTTP_TIMEOUT_S) -> None:
        self.url = url
        self.secret_env = secret_env
        self.timeout_s = timeout_s
        self.location = _safe_url(url)

    def publish(self, bundle: Mapping[str, Any]) -> PublishResult:
        _checked(bundle)
        secret = secret_env(self.secret_env) or ""
        if not secret:
            raise DeployError(
                f"${self.secret_env} is not set: the http deploy target signs every request with it",
                hint=f"export {self.secret_env} (in CI: from a repository secret)",
            )
        start = time.perf_counter()
        body = canonical_json(bundle).encode()
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"knowngood/{__version__}",
                "X-Knowngood-Signature": f"sha256={signature}",
                "X-Knowngood-Agent": str(bundle["agent"]),
                "X-Knowngood-Env": str(bundle["env"]),
                "X-Knowngood-Version": version_of(bundle),
                "X-Knowngood-Content-Hash": str(bundle["content_hash"]),
            },
        )
        opener = urllib.request.build_opener(_NoRedirects())
        try:
            with opener.open(request, timeout=self.timeout_s) as response:
                status, text = response.status, _read_some(response)
        except urllib.error.HTTPError as e:
            status, text = e.code, _read_some(e)
        except (urllib.error.URLError, TimeoutError, HTTPException, OSError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                reason = f"timed out after {self.timeout_s:g}s"
            message = _scrub(f"could not reach {self.location}: {reason}", secret)
            return PublishResult(False, self.type, self.location, message, _since(start))
        text = _scrub(text, secret)
        if 200 <= status < 300:
            return PublishResult(
                True,
                self.type,
                self.location,
                f"{self.location} answered {status}",
                _since(start),
                text,
            )
        hint = (
            " (redirects are not followed: set deploy.target.url to the final URL)"
            if 300 <= status < 400
            else ""
        )
        shown = f": {text.strip()[:500]}" if text.strip() else ""
        return PublishResult(
            False,
            self.type,
            self.location,
            f"{self.location} answered {status}{hint}{shown}",
            _since(start),
            text,
        )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected POST would become a GET elsewhere, whose 2xx would look like a deploy."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _read_some(response: Any) -> str:
    try:
        data: bytes = response.read(4096)
    except (OSError, HTTPException):
        return ""
    return data.decode("utf-8", errors="replace")


def _safe_url(url: str) -> str:
    """The URL without credentials or query string (either could carry a token)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 6)
