"""knowngood: keep AI agents at their last known good configuration.

Importing this package is cheap on purpose: no provider SDK (litellm) is imported here or by
``knowngood --help``; the one module that calls models imports it lazily.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("knowngood")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
