"""litellm, imported once, offline and trimmed (:func:`import_litellm`), and its first-call
set-up run ahead of the first call (:func:`warm`).

The import pins the environment so that it never touches the network (the bundled price
table and Anthropic beta headers), routes OpenAI-compatible chat through litellm's own HTTP
handler, and runs with the garbage collector paused; then litellm's debug output, callbacks and
retries are switched off (:data:`_LITELLM_SETTINGS`). Only :mod:`pipeline.evals.providers`
calls it.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pipeline.errors import ProviderError
from pipeline.evals import trims
from pipeline.evals.httpclient import BLOCKING_PRELUDE, OPENAI_HTTP_HANDLER_ENV, takes_own_client
from pipeline.evals.keys import NO_KEY

__all__ = ["import_litellm", "logged_again", "ready", "unlogged", "warm"]

# litellm's "internal sub-call" flag (a ContextVar): set around our calls, it skips the async
# success logging and spend tracking litellm does for callbacks. knowngood registers none and
# prices calls from the response itself (litellm still sets _hidden_params.response_cost), so
# nothing observable changes: ~1 ms less CPU per call. None if this litellm has no such flag.
_INTERNAL_CALL: Any = None


_LITELLM_MODE: Final = "LITELLM_MODE"  # read once, by litellm's import

# Module attributes set on litellm after import: quiet, no callbacks, no network, no retries.
_LITELLM_SETTINGS: Final[Mapping[str, object]] = {
    "suppress_debug_info": True,  # else it prints "Give Feedback / Get Help" to stdout on errors
    "set_verbose": False,
    "disable_hf_tokenizer_download": True,  # token counting must never hit the network
    "disable_end_user_cost_tracking": True,
    "disable_streaming_logging": True,
    "success_callback": [],
    "failure_callback": [],
    "callbacks": [],
    "_async_success_callback": [],
    "_async_failure_callback": [],
    "num_retries": None,
    "cache": None,
}


def _configure_litellm(litellm: Any) -> None:
    """Quiet litellm and switch off what knowngood does not use. Idempotent."""
    for name, value in _LITELLM_SETTINGS.items():
        setattr(litellm, name, list(value) if isinstance(value, list) else value)
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # litellm 1.106.2's chat path passes its default tokenizer to its HTTP handler on every
    # call, loading it (tiktoken, ~0.2 s of CPU) on the first; only some providers read it.
    main = sys.modules.get("litellm.main")
    load = getattr(main, "_load_default_encoding", None)
    if getattr(main, "_encoding_cache", False) is None and callable(load):
        main._encoding_cache = trims.LazyTokenizer(load)  # type: ignore[union-attr]


def import_litellm() -> Any:
    """Import litellm, offline, quiet and trimmed (the caller keeps the module: once)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    # OpenAI-compatible chat through litellm's own HTTP handler instead of the openai SDK,
    # whose request transform walks every message and tool schema against its TypedDicts:
    # ~1.5 ms less CPU per call (a quarter of litellm's cost) with the same answers and
    # errors. Set it to False in the environment to go back to the SDK.
    os.environ.setdefault(OPENAI_HTTP_HANDLER_ENV, "True")
    # The cyclic garbage collector would run dozens of times during the import, each
    # time walking every object already alive (a run's suites and cases too): ~0.4 s of
    # the import's 2-3 s. Nothing the import creates is garbage worth collecting then.
    collecting = gc.isenabled()
    gc.disable()
    # In its default mode ("DEV") litellm's import loads a `.env` file into os.environ: the
    # first one found upward from litellm's own folder (from the working directory when run
    # as `python -c`). With the virtualenv inside a checkout, as `.ci/install` makes it, that
    # is a file of the change, and it could point a provider's base URL or a proxy at its
    # author, who would then receive the keys. Keys and settings come from the environment
    # only: the import runs in "PRODUCTION" mode, which loads no file.
    mode = os.environ.get(_LITELLM_MODE)
    os.environ[_LITELLM_MODE] = "PRODUCTION"
    try:
        import litellm
    except ImportError as e:  # pragma: no cover - litellm is a dependency
        raise ProviderError(
            f"litellm is not importable: {e}", hint="Install with: pip install knowngood"
        ) from e
    finally:
        if mode is None:
            os.environ.pop(_LITELLM_MODE, None)
        else:
            os.environ[_LITELLM_MODE] = mode
        _resume_collecting(collecting)
    _configure_litellm(litellm)
    global _INTERNAL_CALL
    context = sys.modules.get("litellm._internal_context")  # imported by litellm itself
    _INTERNAL_CALL = getattr(context, "is_internal_call", None)  # else: calls are logged
    return litellm


def ready(litellm: Any, models: Sequence[str]) -> None:
    """Run litellm's first-call set-up for ``models`` (:func:`warm`), then move everything
    alive out of the garbage collector's sight (once): litellm and what it imports are
    millions of objects that live until the process ends. Frozen, they no longer make each
    full collection walk them all (~0.1 s each, several per run, and ~0.6 s at exit), and
    forked lanes share their pages instead of copying them as the collector touches them."""
    global _FROZEN
    for model in models:
        warm(litellm, model)
    if not _FROZEN:
        gc.freeze()
        _FROZEN = True


_FROZEN = False
WARMED: set[str] = set()  # litellm providers whose first-call set-up ran


def warm(litellm: Any, model: str) -> None:
    """litellm's first call for a provider imports ~50 more modules (~0.2 s, most of it the
    garbage collector walking every live object as they load). A mock completion (litellm's
    ``mock_response``: no request goes out) runs that set-up with the collector paused, before
    the loop starts and before lanes are forked, so they share it. Only for the providers whose
    synchronous half does no I/O (:data:`~pipeline.evals.httpclient.BLOCKING_PRELUDE`); best effort: a failure leaves the
    set-up to the first real call."""
    try:
        provider = str(litellm.get_llm_provider(model=model)[1])
    except Exception:  # the real call will say why it cannot route the model
        return
    if provider in WARMED or provider in BLOCKING_PRELUDE or not takes_own_client(provider):
        return
    WARMED.add(provider)
    collecting = gc.isenabled()
    gc.disable()
    token = unlogged()
    try:
        litellm.completion(
            model=model,
            messages=[{"role": "user", "content": "warm-up"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
            mock_response="ok",
            api_key=NO_KEY,
            _skip_mcp_handler=True,
        )
    except Exception:
        pass
    finally:
        logged_again(token)
        _resume_collecting(collecting)


def _resume_collecting(collecting: bool) -> None:
    """Switch the garbage collector back on after a paused import, having first moved what is
    alive out of its sight (``gc.freeze``, O(1)): the modules just loaded are hundreds of
    thousands of objects that live as long as the process, and the first collection after
    ``gc.enable()`` would otherwise walk them all (~0.12 s after litellm's import)."""
    if collecting:
        gc.freeze()
        gc.enable()


def unlogged() -> Any:
    """A token for :func:`logged_again` after marking this task's calls as unlogged."""
    return _INTERNAL_CALL.set(True) if _INTERNAL_CALL is not None else None


def logged_again(token: Any) -> None:
    if token is not None:
        _INTERNAL_CALL.reset(token)
