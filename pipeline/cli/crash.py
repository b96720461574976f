"""What ``knowngood`` does with an exception no code expected (a bug): exit 3, one line on stderr
naming a log file that holds the traceback.

The log goes to ``$XDG_CACHE_HOME/knowngood/logs`` (default ``~/.cache/knowngood/logs``), or to
``knowngood-logs-<uid>`` in the system's temporary folder when that cannot be written. It is written atomically, readable
by its owner only, and never holds a secret: the value of every environment variable whose name
looks like a credential (``*KEY*``, ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, ...) or that is
a URL carrying a password is replaced by ``[redacted NAME]``, in the traceback and the message.
The newest ``KEEP`` logs are kept.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pipeline import redaction

KEEP = 20
_SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|PRIVATE|SIGNATURE|COOKIE|SESSION|WEBHOOK|DSN",
    re.IGNORECASE,
)
_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]+@", re.IGNORECASE)
_MIN_SECRET = 4  # shorter values ("1", "yes") would redact ordinary words


def secret_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """value -> the name of the variable it came from, for every secret-looking variable."""
    env = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for name, value in env.items():
        value = value.strip()
        if len(value) < _MIN_SECRET:
            continue
        if _SECRET_NAME.search(name) or _URL_WITH_PASSWORD.match(value):
            found.setdefault(value, name)
    return found


def redact(text: str, secrets: Mapping[str, str]) -> str:
    """``text`` with every secret value replaced by ``[redacted NAME]`` (longest first, so a
    value that contains another is replaced whole)."""
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, f"[redacted {secrets[value]}]")
    return text


def log_dirs() -> list[Path]:
    """Where a crash log may go, in order of preference."""
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(cache) if cache else Path.home() / ".cache"
    user = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    return [base / "knowngood" / "logs", Path(tempfile.gettempdir()) / f"knowngood-logs-{user}"]


def report_crash(error: BaseException, argv: Sequence[str]) -> str:
    """Write the log of ``error`` and return the one line to print (never raises)."""
    secrets = secret_values()
    kind = type(error).__name__
    first = (str(error).strip().splitlines() or [""])[0]
    # The names below cast a wider net than the central redactor (a log may over-redact); the
    # central one adds what knowngood learned at run time (api_key_env, tokens handed over).
    summary = redaction.redact(redact(f"{kind}: {first}" if first else kind, secrets))
    if len(summary) > 200:
        summary = summary[:197] + "..."
    text = redaction.redact(redact(_log_text(error, argv), secrets))
    problems: list[str] = []
    for folder in log_dirs():
        try:
            path = _write_atomic(folder, text)
        except OSError as e:
            problems.append(f"{folder}: {e.strerror or e}")
            continue
        _prune(folder)
        return (
            f"knowngood: internal error ({summary}): this is a bug in knowngood, not a problem "
            f"in your repository; the traceback is in {path} -- please report it with that file"
        )
    return (
        f"knowngood: internal error ({summary}): this is a bug in knowngood; no log could be "
        f"written ({'; '.join(problems)})"
    )


def _log_text(error: BaseException, argv: Sequence[str]) -> str:
    from pipeline import __version__

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        f"knowngood {__version__} crashed at {now}",
        f"command: knowngood {' '.join(argv)}",
        f"python: {sys.version.split()[0]} on {platform.platform()}",
        f"cwd: {os.getcwd()}",
        "",
        "".join(traceback.format_exception(error)),
    ]
    return "\n".join(lines)


def _write_atomic(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = folder / f"knowngood-{stamp}-{os.getpid()}.log"
    fd, tmp = tempfile.mkstemp(prefix=".knowngood-", suffix=".tmp", dir=folder)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final


def _prune(folder: Path) -> None:
    """Keep the newest ``KEEP`` logs; a log that cannot be removed stays."""
    try:
        logs = sorted(folder.glob("knowngood-*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for old in logs[KEEP:]:
        with contextlib.suppress(OSError):
            old.unlink()
