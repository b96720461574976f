"""The runtime: serve the deployed release of each agent and survive provider failures."""

from __future__ import annotations
