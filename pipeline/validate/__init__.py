"""Repository validation: returns findings, never prints."""

from __future__ import annotations

from pipeline.validate.repository import ValidationReport, validate_repo

__all__ = ["ValidationReport", "validate_repo"]
