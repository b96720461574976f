"""Deploy, check, recover, roll back and drill: releases in environments, recorded in git.

- :func:`deploy` builds a release's bundle from its tag and publishes it to the deploy target;
  ``check=True`` runs the post-deploy suites against it, ``auto_revert=True`` restores the last
  known good release and reverts the merge on main when that check fails.
- :func:`check` runs the post-deploy suites against what is deployed now.
- :func:`rollback` redeploys an earlier known good release without touching main.
- :func:`drill_rollback` rehearses a rollback and records the measured recovery time.

Every deployment, check, incident and drill is a record on the records branch
(:mod:`pipeline.records`); reverts are recorded by :mod:`pipeline.revert`.
"""

from __future__ import annotations

from pipeline.deploy.autorevert import RecoveryOutcome, introducing_commit, recover
from pipeline.deploy.check import CheckOutcome, deployed_bundle, run_check
from pipeline.deploy.context import Context, load_settings
from pipeline.deploy.core import (
    DeployBatch,
    DeployOutcome,
    check,
    deploy,
    deploy_released,
    released_agents,
)
from pipeline.deploy.drill import DRILL_ENV, DrillOutcome, DrillReport, drill_rollback
from pipeline.deploy.rollback import RollbackOutcome, rollback

__all__ = [
    "DRILL_ENV",
    "CheckOutcome",
    "Context",
    "DeployBatch",
    "DeployOutcome",
    "DrillOutcome",
    "DrillReport",
    "RecoveryOutcome",
    "RollbackOutcome",
    "check",
    "deploy",
    "deploy_released",
    "deployed_bundle",
    "drill_rollback",
    "introducing_commit",
    "load_settings",
    "recover",
    "released_agents",
    "rollback",
    "run_check",
]
