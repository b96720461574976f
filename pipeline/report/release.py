"""``knowngood release``'s reporters: a line per tag on stdout, notes on stderr; or JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.report.reporter import Rendered, Reporter, block, json_reporter

if TYPE_CHECKING:
    from pipeline.release import ReleaseReport

SHOWN_REASONS = 5


def text(report: ReleaseReport) -> Rendered:
    verb = "would tag" if report.dry_run else "tagged"
    made = set(report.created)
    out: list[str] = []
    for release in report.planned:
        if not report.dry_run and release.tag not in made:
            continue
        since = f", after {release.previous_tag}" if release.previous_tag else ""
        out.append(f"{verb:9} {release.tag} ({release.label}{since}) on {release.commit[:12]}")
        out += [f"            {reason}" for reason in release.reasons[:SHOWN_REASONS]]
        if len(release.reasons) > SHOWN_REASONS:
            out.append(f"            ... and {len(release.reasons) - SHOWN_REASONS} more")
    out += [f"{'exists':9} {tag} on {report.commit[:12]}" for tag in report.existing]
    out += [f"{'unchanged':9} {skip.agent}: {skip.reason}" for skip in report.skipped]
    out += [f"{'pushed':9} {tag}" for tag in report.pushed]
    err = [f"note: {message}" for message in report.messages]
    if not report.planned and not report.existing:
        err.append("nothing to release")
    return Rendered(out=block(out), err=block(err))


REPORTERS: dict[str, Reporter[ReleaseReport]] = {
    "text": text,
    "json": json_reporter(ensure_ascii=False),
}
