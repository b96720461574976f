"""Semantic versions and the tag names releases use: ``<agent>/vX.Y.Z``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import UsageError

_NUMBER = r"(0|[1-9][0-9]*)"
_SEMVER = re.compile(rf"^v?{_NUMBER}\.{_NUMBER}\.{_NUMBER}$")
_TAG = re.compile(
    rf"^(?P<agent>[a-z][a-z0-9_-]{{0,63}})/v(?P<version>{_NUMBER}\.{_NUMBER}\.{_NUMBER})$"
)


@dataclass(frozen=True, order=True, slots=True)
class Version:
    """``MAJOR.MINOR.PATCH`` (no pre-release or build parts); ordered the semver way."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        """``1.2.3`` or ``v1.2.3``; UsageError for anything else."""
        match = _SEMVER.match(text.strip())
        if match is None:
            raise UsageError(
                f"not a version: {text!r}",
                hint="write MAJOR.MINOR.PATCH, e.g. 1.4.0 (no leading zeros, no suffix)",
            )
        return cls(*(int(part) for part in match.groups()))

    def bump(self, kind: str) -> Version:
        """The next version for a ``major``, ``minor`` or ``patch`` change."""
        if kind == "major":
            return Version(self.major + 1, 0, 0)
        if kind == "minor":
            return Version(self.major, self.minor + 1, 0)
        if kind == "patch":
            return Version(self.major, self.minor, self.patch + 1)
        raise ValueError(f"unknown bump {kind!r} (major, minor or patch)")

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


FIRST_VERSION = Version(0, 1, 0)


def tag_name(agent: str, version: Version) -> str:
    """``support/v1.2.3``."""
    return f"{agent}/v{version}"


def parse_tag(name: str) -> tuple[str, Version] | None:
    """``(agent, version)`` for a release tag name (with or without ``refs/tags/``), else None."""
    match = _TAG.match(name.removeprefix("refs/tags/"))
    if match is None:
        return None
    return match["agent"], Version.parse(match["version"])
