"""What runs in an environment: the records, settled with what the deploy target reports.

Every change to what runs leaves two records. The *intent* (kind ``intent``, outcome
``pending``) is written and pushed before the target is asked to change; the *deployment*
(kind ``deployment``) that names it in ``intent`` is written when the target has answered. A
process killed in between leaves an intent that no deployment names: it is *unsettled*, and the
records alone cannot say whether the target took the change. Then the target is asked what it
runs, and its answer settles every unsettled intent:

- it runs an unsettled intent's bundle (the newest such intent wins): that change took effect
  (``confirmed``); the settlement is a ``success`` (or ``removed``) deployment for that intent
  and a ``failure`` for the other unsettled intents;
- it runs what the records already say: none took effect (``not-applied``); the settlement is
  a ``failure`` for each;
- it cannot tell, or runs something else: ``unknown``. Nothing is written; ``status`` says so
  and the next deploy or rollback (which publish a bundle explicitly) settles it.

Only intents newer than the newest settled deployment count: anything older was superseded by a
change that did take effect. The target is asked only when there is an unsettled intent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import KnowngoodError
from pipeline.records import new_record
from pipeline.recordtypes import Deployed, DeploymentRecord, IntentRecord
from pipeline.repo import Settings
from pipeline.targets import Observed, Target, make_target

__all__ = ["SETTLED", "Running", "TargetObserver", "pending", "resolve", "settlement"]

SETTLED = ("success", "removed")  # deployment outcomes that decide what runs


@dataclass(frozen=True, slots=True)
class Running:
    agent: str
    env: str
    recorded: DeploymentRecord | None  # the newest success or removed deployment
    unsettled: tuple[IntentRecord, ...] = ()  # newer intents no deployment names, newest first
    observed: Observed | None = None  # what the target reported (asked only for unsettled intents)
    applied: IntentRecord | None = None  # the unsettled intent whose change the target shows
    in_progress: IntentRecord | None = None  # an unsettled intent that still holds the lock

    @property
    def state(self) -> str:
        """settled | confirmed | not-applied | unknown."""
        if not self.unsettled:
            return "settled"
        if self.applied is not None:
            return "confirmed"
        observed = self.observed
        if (
            observed is not None
            and observed.known
            and observed.content_hash == _runs(self.recorded)
        ):
            return "not-applied"
        return "unknown"

    @property
    def deployment(self) -> Deployed | None:
        """What runs, as far as anyone can tell: the intent the target confirmed, else the
        records' deployment (None when nothing runs). When the state is unknown, this is what
        ran before the interrupted change, which may or may not have taken effect."""
        if self.applied is not None:
            return None if self.applied["action"] == "remove" else self.applied
        if self.recorded is not None and self.recorded["outcome"] == "success":
            return self.recorded
        return None

    @property
    def interrupted(self) -> IntentRecord | None:
        """The newest unsettled intent, if any."""
        return self.unsettled[0] if self.unsettled else None

    def note(self) -> str | None:
        """One line on an interrupted change, None when everything is settled."""
        intent = self.interrupted
        if intent is None or self.observed is None:
            return None
        what = f"{intent['what']} was interrupted ({intent['at']}, intent {intent['id']})"
        before = (
            label(self.recorded)
            if self.recorded and self.recorded["outcome"] == "success"
            else "nothing"
        )
        if (doing := self.in_progress) is not None:
            return (
                f"{doing['what']} is in progress (begun {doing['at']} by {doing['actor']}, "
                f"intent {doing['id']}): {self.agent} runs {before}, or {label(doing)} once it "
                "is done; another deploy or rollback waits for it"
            )
        state = self.state
        if state == "confirmed" and self.applied is not None:
            return f"{self.applied['what']} was interrupted, but it took effect: the target runs it ({self.observed.how})"
        if state == "not-applied":
            return f"{what} before it took effect: the target still runs {before} ({self.observed.how})"
        reported = (
            f"it runs {str(self.observed.content_hash or 'nothing')[:12]}, which no record names"
            if self.observed.known
            else f"it cannot tell: {self.observed.how}"
        )
        return (
            f"{what} and the target does not say whether it took effect ({reported}): "
            f"{self.agent} runs {before} or {label(intent)} in {self.env}; deploy or roll back "
            "to settle it"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "in_progress": self.in_progress is not None,
            "interrupted": [
                {k: i.get(k) for k in ("id", "at", "action", "release", "content_hash")}
                for i in self.unsettled
            ],
            "observed": self.observed.to_dict() if self.observed is not None else None,
            "note": self.note(),
        }


def label(record: Mapping[str, object]) -> str:
    """``shop/v1.2.0``, or the short commit of a deployment without a release."""
    return str(record.get("release") or str(record["commit"])[:12])


def _runs(record: DeploymentRecord | None) -> str | None:
    """The content hash that runs after ``record`` settled (None: nothing runs)."""
    if record is None or record["outcome"] != "success":
        return None
    return record["content_hash"]


def _leaves(intent: IntentRecord) -> str | None:
    """The content hash that runs once ``intent`` took effect."""
    return None if intent["action"] == "remove" else intent["content_hash"]


def resolve(
    agent: str,
    env: str,
    deployments: Sequence[DeploymentRecord],
    intents: Sequence[IntentRecord],
    observe: Callable[[], Observed],
) -> Running:
    """What runs of ``agent`` in ``env``, from its deployment and intent records (each newest
    first); ``observe`` asks the target, and is called only when an intent is unsettled."""
    recorded = next((d for d in deployments if d["outcome"] in SETTLED), None)
    unsettled = pending(deployments, intents)
    if not unsettled:
        return Running(agent, env, recorded)
    observed = observe()
    applied = None
    if observed.known:
        applied = next((i for i in unsettled if _leaves(i) == observed.content_hash), None)
    return Running(agent, env, recorded, unsettled, observed, applied)


def pending(
    deployments: Sequence[DeploymentRecord], intents: Sequence[IntentRecord]
) -> tuple[IntentRecord, ...]:
    """The intents (newest first, like ``intents``) that no deployment names and that are newer
    than the newest deployment that took effect: changes begun and not finished, or never
    finished (interrupted)."""
    recorded = next((d for d in deployments if d["outcome"] in SETTLED), None)
    named = {d.get("intent") for d in deployments}
    since = recorded["at"] if recorded is not None else ""
    return tuple(i for i in intents if i["id"] not in named and i["at"] > since)


def settlement(running: Running, *, by: str) -> list[DeploymentRecord]:
    """The deployment records that settle ``running``'s unsettled intents (none when the
    target could not tell)."""
    state = running.state
    if state not in ("confirmed", "not-applied") or running.observed is None:
        return []
    observed = running.observed
    shown = str(observed.content_hash)[:12] if observed.content_hash else "nothing"
    out = []
    for intent in reversed(running.unsettled):  # oldest first: the records keep their order
        took = intent is running.applied
        if took:
            outcome = "removed" if intent["action"] == "remove" else "success"
            why = f"settled after an interrupted deploy: the target reports it runs {shown}"
        else:
            outcome = "failure"
            why = f"settled after an interrupted deploy: it did not take effect, the target runs {shown}"
        details = dict(intent.get("details", {}))
        details["settled"] = {
            "observed": observed.content_hash,
            "how": observed.how,
            "intent_at": intent["at"],
        }
        if not took:
            details["error"] = f"interrupted before it took effect (the target runs {shown})"
        out.append(
            new_record(
                "deployment",
                agent=intent["agent"],
                env=intent["env"],
                what=intent["what"],
                why=why,
                outcome=outcome,
                by=by,
                intent=intent["id"],
                release=intent.get("release"),
                commit=intent["commit"],
                content_hash=intent["content_hash"],
                target=intent["target"],
                rollback=intent.get("rollback", False),
                previous=intent.get("previous"),
                details=details,
            )
        )
    return out


class TargetObserver:
    """Asks the deploy target what runs (``resolve``'s ``observe``), building the target only
    when a deploy was interrupted; a target that cannot be built answers "unknown"."""

    def __init__(self, settings: Settings, root: Path, timeout_s: float) -> None:
        self.settings = settings
        self.root = root
        self.timeout_s = timeout_s
        self._target: Target | KnowngoodError | None = None

    def __call__(self, agent: str, env: str) -> Observed:
        if self._target is None:
            try:
                self._target = make_target(
                    self.settings.deploy.get("target"), self.root, timeout_s=self.timeout_s
                )
            except KnowngoodError as e:
                self._target = e
        if isinstance(self._target, KnowngoodError):
            return Observed.unknown(self._target.message)
        return self._target.running(agent, env)
