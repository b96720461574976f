"""Work litellm does on every call that knowngood's calls do not need, cut without changing them.

:mod:`pipeline.evals.providers` (the only module that imports litellm) applies these; nothing
here imports litellm.

**The synchronous half on the event loop's thread.** ``litellm.acompletion`` runs its
synchronous half (routing, parameter mapping, building the request) through
``loop.run_in_executor(None, ...)``, which returns the coroutine that sends the request. For the
providers whose litellm handler takes knowngood's HTTP client that half does no I/O, and handing
it to a thread costs more than running it: a thread hop per call, a wake-up of the loop, and
two busy threads trading the GIL (each switch can wait out the 5 ms switch interval). The loop's
default executor is :class:`InlineExecutor`: a call marked with :func:`inline_first_submit` runs
the first function it submits (that half) at once, on the loop's thread; everything else
(``asyncio.to_thread``, the halves of providers that may block, such as fetching cloud
credentials) goes to its threads as before.

**The tokenizer, when something uses it.** litellm's chat path fetches its default tokenizer
(tiktoken's cl100k_base, ~0.2 s of CPU to load) on every call, as an argument of its HTTP
handler, though for providers that report usage nothing reads it. :class:`LazyTokenizer` stands
in for it and loads the real one on first use.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

__all__ = ["InlineExecutor", "LazyTokenizer", "inline_first_submit", "install_executor"]

# Per call: [True] until the call's first submission ran inline.
_INLINE: ContextVar[list[bool] | None] = ContextVar("knowngood_inline", default=None)
_INSTALLED: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_NOT_A_BASE_LOOP: Final = object()


class InlineExecutor(ThreadPoolExecutor):
    """A thread pool that runs at once, on the caller's thread, the first function submitted
    by a call marked with :func:`inline_first_submit`."""

    def __init__(self) -> None:
        super().__init__(thread_name_prefix="asyncio")

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        mark = _INLINE.get()
        if mark is None or not mark[0]:
            return super().submit(fn, *args, **kwargs)
        mark[0] = False  # one function per call: litellm's synchronous half, nothing after it
        future: Future[Any] = Future()
        try:
            result = fn(*args, **kwargs)
        except Exception as e:  # a KeyboardInterrupt is not an answer: it propagates
            future.set_exception(e)
        else:
            future.set_result(result)
        return future


def install_executor(loop: asyncio.AbstractEventLoop) -> bool:
    """Make :class:`InlineExecutor` ``loop``'s default executor, unless the loop already made
    one (asyncio creates it on the first ``to_thread``) or is not asyncio's. True when it is."""
    if loop in _INSTALLED:
        return True
    if getattr(loop, "_default_executor", _NOT_A_BASE_LOOP) is not None:
        return False  # calls still work, through that executor's threads
    loop.set_default_executor(InlineExecutor())
    _INSTALLED.add(loop)
    return True


@contextmanager
def inline_first_submit() -> Iterator[None]:
    """Within it, the running task's first submission to an :class:`InlineExecutor` runs inline."""
    token = _INLINE.set([True])
    try:
        yield
    finally:
        _INLINE.reset(token)


class LazyTokenizer:
    """Stands in for a tokenizer that ``load`` returns, loading it on first use."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load = load
        self._real: Any = None
        self._lock = threading.Lock()

    def loaded(self) -> bool:
        return self._real is not None

    def _tokenizer(self) -> Any:
        if self._real is None:
            with self._lock:
                if self._real is None:
                    self._real = self._load()
        return self._real

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_load", "_real", "_lock"):
            raise AttributeError(name)
        return getattr(self._tokenizer(), name)
