"""Repository validation: returns findings, never prints."""

from __future__ import annotations

from pipeline.validate.repository import ValidationReport, validate_repo
from pipeline.validate.require import valid_repo

__all__ = ["ValidationReport", "valid_repo", "validate_repo"]
