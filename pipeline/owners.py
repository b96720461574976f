"""Who holds something: a name for each holding of a process, and whether the process that
took it is gone.

An idempotency claim (:mod:`pipeline.runtime.idempotency`) and a budget hold
(:mod:`pipeline.runtime.spend`) are owned by a request of one serve process; a deploy's intent
(the deploy lock, :mod:`pipeline.deploy.lock`) by one ``deploy``, ``rollback`` or drill. When
that process dies (SIGKILL, OOM) what it held would wait out its expiry; :func:`gone` lets the
next one on the same machine drop it at once. A name carries the machine (its host name and
boot), the process id and the process's start time, so neither a process id used again nor
another machine of the same host name is taken for the owner. Standard library only: ``status``
and ``deploy`` use it without the runtime's HTTP stack.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid

__all__ = ["gone", "mine", "new_owner"]


def new_owner() -> str:
    """A name for what a request of this process holds, that :func:`gone` can judge."""
    return f"{_PROCESS}:{uuid.uuid4().hex}"


def mine(owner: str) -> bool:
    """Whether ``owner`` was named by this very process."""
    return owner.startswith(f"{_PROCESS}:")


def gone(owner: str) -> bool:
    """Whether the claim ``owner`` was made by a process of this machine that is gone (a
    serve killed mid-request): its key need not wait :data:`STALE_S`. A claim of another
    machine, or of a version that did not name its process, is never judged here."""
    machine, _, rest = owner.partition(":")
    pid, _, rest = rest.partition(":")
    started, _, _ = rest.partition(":")
    if machine != _MACHINE or not pid.isdigit():
        return False
    return _started(int(pid)) != started


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), "" where there is no
    /proc to tell (any live process then matches a claim made without it); None: no such
    process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except FileNotFoundError:
        return None
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass
        return ""


def _machine() -> str:
    """This machine: its host name (each container has its own) and, on Linux, its boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    return hashlib.sha256(f"{socket.gethostname()}\0{boot}".encode()).hexdigest()[:16]


_MACHINE: str = _machine()
_PROCESS: str = f"{_MACHINE}:{os.getpid()}:{_started(os.getpid()) or ''}"
