"""``knowngood readiness``: the disaster-recovery checklist, measured."""

from __future__ import annotations

from pipeline.readiness.core import ReadinessRequest, readiness_items, run
from pipeline.readiness.model import ITEMS, Check, Item, Policy, ReadinessReport

__all__ = [
    "ITEMS",
    "Check",
    "Item",
    "Policy",
    "ReadinessReport",
    "ReadinessRequest",
    "readiness_items",
    "run",
]
