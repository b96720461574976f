"""A repository that must validate: the typed repo, or an error listing its first errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import ConfigError, KnowngoodError
from pipeline.validate.repository import validate_repo
from pipeline.words import plural

if TYPE_CHECKING:
    from pipeline.repo import Repo


def valid_repo(
    root: Path,
    what: str,
    *,
    hint: str,
    error: type[KnowngoodError] = ConfigError,
    after: str = "",
    show: int = 10,
) -> Repo:
    """The typed repository at ``root`` (a checkout or an exported revision), validated like
    ``knowngood validate``. Any error raises ``error``: ``what`` (e.g. "commit 1a2b3c does not
    validate"), the count, ``after``, then the first ``show`` errors, each on its own line."""
    report = validate_repo(root, build=True)
    if report.errors or report.repo is None:
        count = len(report.errors)
        lines = [f"  {f.render()}" for f in report.errors[:show]]
        if count > show:
            lines.append(f"  ... and {count - show} more")
        raise error(f"{what} ({plural(count, 'error')}){after}:\n" + "\n".join(lines), hint=hint)
    return report.repo
