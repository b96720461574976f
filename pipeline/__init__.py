"""knowngood: keep AI agents at their last known good configuration.

Importing this package is cheap on purpose: no provider SDK (litellm) is imported here or by
``knowngood --help``; the one module that calls models imports it lazily. ``__version__`` is
read from the installed metadata on first use only: ``importlib.metadata`` scans every
distribution on the path (30-60 ms), which most commands never need.
"""

from __future__ import annotations

__all__ = ["__version__"]

_version: str | None = None


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    global _version
    if _version is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            _version = version("knowngood")
        except PackageNotFoundError:  # pragma: no cover - a source tree without install
            _version = "0.0.0"
    return _version
