from __future__ import annotations

from pipeline.cli import run

run()
