"""Revert a merge on the main branch, with safeguards (``knowngood revert``, ``deploy --auto-revert``).

::

    outcome = revert_merge(git, root, settings, RevertRequest(sha, "post-deploy check failed",
                           failing_cases=["support/smoke/greets@openai"], auto=True),
                           github=client, records=store)
    outcome.status  # "reverted" | "pull_request" | "skipped" | "failed"

See :mod:`pipeline.revert.core` for the order of work and :mod:`pipeline.revert.safeguards` for
the safeguards.
"""

from __future__ import annotations

from pipeline.revert.core import revert_merge
from pipeline.revert.model import (
    ALREADY_REVERTED,
    DAILY_LIMIT,
    MAIN_BRANCH,
    OPT_OUT,
    OPT_OUT_MARKER,
    REVERT_OF_REVERT,
    SAFEGUARDS,
    TRAILER,
    RevertOutcome,
    RevertRequest,
    Status,
    branch_name,
    pr_marker,
    revert_message,
)

__all__ = [
    "ALREADY_REVERTED",
    "DAILY_LIMIT",
    "MAIN_BRANCH",
    "OPT_OUT",
    "OPT_OUT_MARKER",
    "REVERT_OF_REVERT",
    "SAFEGUARDS",
    "TRAILER",
    "RevertOutcome",
    "RevertRequest",
    "Status",
    "branch_name",
    "pr_marker",
    "revert_merge",
    "revert_message",
]
