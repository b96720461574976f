"""The workflow ``knowngood drill crash`` runs in a worker (``serve --workflows
pipeline.runtime.drillflow``): a model step, a tool step with an effect, a last step.

The tool is the drill's own loopback effect counter (:mod:`pipeline.deploy.crash_drill`); the
drill kills the worker after the effect and before its checkpoint, and counts what happens
when the restarted worker resumes the workflow.
"""

from __future__ import annotations

import os
from typing import Any

from pipeline.runtime import workflows as wf
from pipeline.runtime.toolcalls import Endpoint

__all__ = ["WORKFLOW", "crash_drill", "effect_endpoint"]

WORKFLOW = "knowngood_drill_crash"
PROMPT = "This is a knowngood crash drill. Answer with the single word OK."


def effect_endpoint(tool_url: str) -> Endpoint:
    """The drill's effect, a tool call with a breaker of its own (``.breaker``)."""
    return Endpoint("drill_effect", tool_url, "POST")


@wf.workflow(WORKFLOW)
def crash_drill(agent: str, tool_url: str) -> dict[str, Any]:
    """Ask ``agent``, make one effect at ``tool_url``, finish (returns the finishing pid)."""
    started = wf.step(os.getpid, name="start")
    answer = wf.ask(agent, PROMPT)
    effect = wf.call(effect_endpoint(tool_url), {"agent": agent})
    finished = wf.step(os.getpid, name="finish")
    return {
        "started_pid": started,
        "finished_pid": finished,
        "provider": answer["provider"],
        "effect": effect["body"],
    }
