"""What a revert tells people: the commands to finish by hand, the pull request, the placeholder."""

from __future__ import annotations

import shlex

from pipeline.revert.model import (
    MAX_LISTED_CASES,
    TRAILER,
    MergeInfo,
    RevertRequest,
    branch_name,
    pr_marker,
    reverts_phrase,
)


def manual_commands(
    info: MergeInfo, remote: str, main: str, conflicts: tuple[str, ...] = ()
) -> str:
    """The exact commands that revert ``info`` by hand, through a pull request."""
    m = "-m 1 " if info.is_merge else ""
    branch = branch_name(info.sha)
    lines = [
        f"  git fetch {remote} {main}",
        f"  git switch -c {branch} {remote}/{main}",
        f"  git revert {m}{info.sha}",
    ]
    if conflicts:
        lines.append(
            f"  # resolve {', '.join(conflicts)}, then: git add {_quoted(conflicts)} "
            "&& git revert --continue"
        )
    lines.append(f"  git push {remote} {branch}   # then open a pull request into {main}")
    return "\n".join(lines)


def placeholder_message(info: MergeInfo, conflicts: tuple[str, ...]) -> str:
    """The empty commit a conflicted revert's pull request carries. It changes nothing, so it
    undoes nothing: neither it nor its trailer ever counts as a revert (see
    :mod:`pipeline.revert.undo`); the revert made on the branch by hand is what counts."""
    return (
        f'Prepare the revert of "{info.subject}"\n\n'
        f"Reverting {info.sha} conflicts with later changes in: {', '.join(conflicts)}.\n"
        "This empty commit only opens the pull request; the revert itself is to be made on "
        "this branch by hand.\n\n"
        f"{TRAILER}: {info.sha}\n"
    )


def pull_request_body(
    info: MergeInfo, request: RevertRequest, why: str, remote: str, conflicts: tuple[str, ...]
) -> str:
    cases = request.failing_cases
    lines = [
        pr_marker(info.sha),
        f"{reverts_phrase(info.sha)} ({info.subject}).",
        "",
        f"**Why:** {request.reason.strip() or 'no reason given'}",
    ]
    if cases:
        lines += ["", "Failing cases:", *(f"- `{c}`" for c in cases[:MAX_LISTED_CASES])]
        if len(cases) > MAX_LISTED_CASES:
            lines.append(f"- ... and {len(cases) - MAX_LISTED_CASES} more")
    lines += ["", f"Opened as a pull request because {why}."]
    if conflicts:
        m = "-m 1 " if info.is_merge else ""
        branch = branch_name(info.sha)
        lines += [
            "",
            "The revert conflicts, so this branch holds only an empty commit: nothing "
            "conflicted was committed. To finish it:",
            "",
            "```sh",
            f"git fetch {remote} {branch}",
            f"git switch {branch}",
            f"git revert {m}{info.sha}",
            f"# resolve {', '.join(conflicts)}, then:",
            f"git add {_quoted(conflicts)} && git revert --continue",
            "git push",
            "```",
            "",
            "Then mark this pull request ready for review.",
        ]
    return "\n".join(lines) + "\n"


def _quoted(paths: tuple[str, ...]) -> str:
    return " ".join(shlex.quote(p) for p in paths)
