"""Render ``knowngood init``: what it wrote and what to do next (stderr), or JSON on stdout."""

from __future__ import annotations

import os

from pipeline.report.reporter import Rendered, Reporter, block, json_reporter
from pipeline.scaffold import InitResult


def text(result: InitResult) -> Rendered:
    lines = [f"  wrote {rel}" for rel in result.written]
    where = result.root
    if result.git_init:
        lines.append(f"knowngood: initialised a git repository in {where} (branch main)")
    if result.git_top is not None:
        rel = os.path.relpath(where.resolve(), result.git_top)
        lines.append(
            f"knowngood: warning: {where} is inside the git repository {result.git_top}: "
            f"GitHub runs only the workflows in {result.git_top}/.github/workflows -- move them "
            f"there and pass --repo {rel} to each knowngood command in them"
        )
    lines.append(
        f"knowngood repository ready in {where}. Next:\n"
        f"  cd {where} && knowngood validate && knowngood eval   # the local model, no key\n"
        "  git add -A && git commit -m 'knowngood init'             # then push to GitHub;\n"
        "  the workflows need the secrets of the providers you enable (e.g. OPENAI_API_KEY)\n"
        "  knowngood release && knowngood deploy --released && knowngood serve\n"
        "                                 # the agent answers on 127.0.0.1:8000, no key either"
    )
    return Rendered(err=block(lines))


REPORTERS: dict[str, Reporter[InitResult]] = {
    "text": text,
    "json": json_reporter(ensure_ascii=False),
}
