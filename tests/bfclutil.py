"""The Berkeley Function Calling Leaderboard's real tool definitions, from ../shared/corpora/bfcl
(absent in a fresh clone: tests that use it skip with :data:`SKIP_WITHOUT`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

BFCL = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "bfcl"
SKIP_WITHOUT = pytest.mark.skipif(
    not BFCL.is_dir(), reason="the BFCL corpus lives in ../shared/corpora, absent in a fresh clone"
)


def bfcl_tools() -> list[dict[str, Any]]:
    """Every function of every BFCL file, in file order."""
    tools: list[dict[str, Any]] = []
    for path in sorted(BFCL.glob("*.json")):
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    tools.extend(json.loads(line)["function"])
    return tools
