"""One change at a time to what runs of an agent in an environment, across machines.

The lock is the pending intent (:mod:`pipeline.running`): ``deploy``, ``rollback``, an
auto-revert's restore and the drills write an intent and push it before the target changes, and
it stays pending until the deployment record naming it is written. With a remote, that push is a
compare-and-swap (:meth:`pipeline.records.RecordStore.append_admitted`): the records branch is
fetched, checked for another live intent of the same agent and environment, and the intent
pushed on exactly the tip that was checked; when another push got there first, the check runs
again. Of two commands racing, one pushes its intent and the other refuses (:class:`LockHeld`,
exit 3) before it changes anything. Every command that settles an interrupted intent checks the
lock first too (``Context.running``), so a change in progress is never settled as if it had died.

An intent stops holding the lock when a deployment names it (the change is done) or a later one
took effect (it was superseded), when it is older than the target may take to answer plus a
margin (:func:`lock_s`: the process that wrote it died, or stalled past any deploy's length), and at once when it was written on this
machine by a process that no longer runs (killed: :func:`pipeline.owners.gone`, which a process
id used again or another machine of the same host name does not fool). Such an intent is settled like any
interrupted deploy: by asking the target what runs. Without a remote nothing is locked.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.errors import DeployError
from pipeline.owners import gone, mine, new_owner
from pipeline.records import RecordStore, parse_time
from pipeline.recordtypes import IntentRecord
from pipeline.redaction import redact
from pipeline.running import pending
from pipeline.targets import Target

__all__ = ["MARGIN_S", "LockHeld", "check_lock", "here", "live_holder", "lock_s"]

MARGIN_S = 60.0  # over what the target may take: pushing the intent and the deployment record


def lock_s(target: Target) -> float:
    """How long an intent holds the lock at most: twice the target's timeout (the publish, a
    command killed or an http exchange cut after it, then asking the target what runs when it
    failed) and a margin; a directory target answers at once."""
    return 2 * float(getattr(target, "timeout_s", 0.0)) + MARGIN_S


def here() -> dict[str, Any]:
    """Where this process runs, kept in its intents (``details.holder``)."""
    where: dict[str, Any] = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "owner": new_owner(),  # machine, pid and start time: judged by owners.gone
        # redacted: a reason or a path given on the command line may quote a secret
        "command": redact(" ".join(["knowngood", *sys.argv[1:]]))[:200],
    }
    env = os.environ
    if all(env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")):
        where["run"] = (
            f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}/actions/runs/"
            f"{env['GITHUB_RUN_ID']}"
        )
    return where


def check_lock(store: RecordStore, target: Target, agent: str, env: str) -> None:
    """LockHeld when another command's change to ``agent`` in ``env`` is in progress: its
    intent pending and live. Nothing is locked without a remote."""
    if not store.data.has_remote():
        return
    limit = lock_s(target)
    intents = pending(store.list("deployment", agent, env), store.list("intent", agent, env))
    holder = live_holder(intents, limit)
    if holder is not None:
        raise LockHeld(holder, limit)


def live_holder(
    intents: Sequence[IntentRecord], limit_s: float, now: datetime | None = None
) -> IntentRecord | None:
    """The newest of the pending ``intents`` (newest first) that still holds the lock."""
    now = now or datetime.now(UTC)
    return next((i for i in intents if _holds(i, limit_s, now)), None)


def _holds(intent: IntentRecord, limit_s: float, now: datetime) -> bool:
    holder = _holder(intent)
    owner = holder.get("owner")
    if isinstance(owner, str) and owner:  # this process's own, or a dead one's of this machine
        if mine(owner) or gone(owner):
            return False
    elif holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        # an intent written before holders named their owner: the host name and the pid
        pid = int(holder["pid"])
        if pid == os.getpid() or not _runs(pid):  # this process's own, or a dead one's
            return False
    return now < _expires(intent, limit_s)


def _holder(intent: IntentRecord) -> Mapping[str, Any]:
    holder = intent.get("details", {}).get("holder")
    return holder if isinstance(holder, dict) else {}


def _expires(intent: IntentRecord, limit_s: float) -> datetime:
    return parse_time(intent["at"]) + timedelta(seconds=limit_s)


def _runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's, or not a pid at all
        return True
    return True


class LockHeld(DeployError):
    """Another command is changing what runs of this agent in this environment (exit 3)."""

    def __init__(self, intent: IntentRecord, limit_s: float) -> None:
        holder = _holder(intent)
        where = ", ".join(
            f"{k} {holder[k]}" for k in ("host", "pid", "run", "command") if holder.get(k)
        )
        until = _expires(intent, limit_s).strftime("%Y-%m-%dT%H:%M:%SZ")
        super().__init__(
            f"{intent['agent']} in {intent['env']} is being changed by another command: "
            f"{intent['what']} ({intent['why']}), begun {intent['at']} by {intent['actor']}"
            + (f" ({where})" if where else "")
            + f"; its intent {intent['id']} is still pending",
            hint="wait for it to finish, then run this again; if that command died, its lock "
            f"lapses at {until} ({limit_s:g} s after it began; on the machine it ran on, as "
            "soon as its process is gone), and then the next deploy, rollback or check settles "
            "it by asking the target what runs",
        )
        self.intent = intent
        self.until = until
