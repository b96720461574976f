"""Durable multi-step workflows: DBOS workflows whose steps are model calls, tool calls and
your own code, each checkpointed in the state store.

::

    from pipeline.runtime import workflows as wf

    @wf.workflow("refund")
    def refund(order: str) -> str:
        note = wf.ask("support", f"Write a short refund note for order {order}")["text"]
        wf.tool("support", "send_email", {"to": "ops@example.com", "body": note})
        return wf.step(lambda: f"refunded {order}", name="done")

    with wf.Worker.open(".", env="production") as worker:
        workflow_id = worker.start(refund, "A1")
        print(worker.result(workflow_id))

- :func:`workflow` declares one (module level, before :meth:`Worker.open`: the recovery
  needs its code). Its arguments and result must be picklable; keep them small and plain.
- :func:`ask` asks a deployed agent through the runtime's failover path (chain, breakers,
  ``on_all_down``) and checkpoints the answer: ``{text, tool_calls, provider, release, ...}``.
  When no provider answers, the step fails (AllProvidersDown; ``retries`` retry it): a
  holding message is no answer. A cached answer (``on_all_down: cached``) is one.
- :func:`tool` calls a tool of the agent's deployed release that declares an ``endpoint``, with
  an ``Idempotency-Key`` header derived from the workflow id and the step number, through the
  endpoint's breaker (:mod:`pipeline.runtime.toolcalls`). :func:`call` does the same for an
  :class:`~pipeline.runtime.toolcalls.Endpoint` given in code.
- :func:`step` runs your function as a step: once its result is checkpointed it never runs
  again for this workflow. A step that was running when the worker died runs again: give it
  an idempotency key of its own (:func:`step_key`) if it has effects.

A worker killed mid-workflow resumes it from the last checkpointed step when it (or, on
PostgreSQL, a worker that takes its slot) starts again. ``knowngood serve --workflows MODULE``
is such a worker; :class:`Worker` is one in your own process.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pipeline.errors import UsageError

__all__ = [
    "Worker",
    "ask",
    "attach",
    "call",
    "load_modules",
    "step",
    "step_key",
    "tool",
    "workflow",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
DRAIN_S = 30.0  # at close, model calls of running steps get this long to end


class _Context:
    """What steps use in this process: the runtime and an event loop of their own."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="kg-steps")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        """Let the model calls of running steps end (bounded: they have timeouts), close the
        loop's clients, stop the loop."""

        async def _aclose() -> None:
            running = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if running:
                await asyncio.wait(running, timeout=DRAIN_S)
            await self.runtime.aclose()

        try:
            asyncio.run_coroutine_threadsafe(_aclose(), self.loop).result(DRAIN_S + 15)
        except Exception:  # closing anyway: what did not end is left to the next worker
            pass
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
            self.loop.close()


_context: _Context | None = None


def attach(runtime: Any) -> None:
    """Steps of this process use ``runtime`` (a :class:`~pipeline.runtime.core.Runtime`)."""
    global _context
    if _context is not None and _context.runtime is runtime:
        return
    detach()
    _context = _Context(runtime)


def detach() -> None:
    global _context
    if _context is not None:
        context, _context = _context, None
        context.close()


def _runtime() -> Any:
    if _context is None:
        raise UsageError(
            "no runtime for this workflow's steps",
            hint="run workflows in a worker: Worker.open(...) or knowngood serve --workflows",
        )
    return _context.runtime


def load_modules(root: Path, modules: Sequence[str]) -> None:
    """Import the modules that declare workflows (the repository's root is on the path)."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise UsageError(
                f"cannot import the workflows module {name!r}: {e}",
                hint="give a module name importable from the repository root (my_flows or "
                "pkg.flows)",
            ) from e


# -- declaring --------------------------------------------------------------------------------


def workflow(name: str | None = None) -> Callable[[F], F]:
    """Declare a durable workflow (a DBOS workflow) named ``name`` (default: the function's)."""
    from dbos import DBOS

    def register(fn: F) -> F:
        registered: F = DBOS.workflow(name=name or fn.__qualname__)(fn)  # type: ignore[assignment]
        return registered

    return register


def step(fn: Callable[..., T], *args: Any, name: str | None = None, retries: int = 0) -> T:
    """Run ``fn(*args)`` as a checkpointed step of the current workflow (``retries`` more
    attempts on an exception, 1 s apart, doubling)."""
    from dbos import DBOS, StepOptions

    options: StepOptions = {"name": name or getattr(fn, "__name__", "step")}
    if retries:
        options["retries_allowed"] = True
        options["max_attempts"] = retries + 1
        options["interval_seconds"] = 1.0
    return DBOS.run_step(options, fn, *args)


def step_key() -> str:
    """Inside a step: its idempotency key (the same on every run of this step)."""
    from dbos import DBOS

    from pipeline.runtime.toolcalls import idempotency_key

    workflow_id, step_id = DBOS.workflow_id, DBOS.step_id
    if workflow_id is None or step_id is None:
        raise UsageError("step_key() is only known inside a step of a workflow")
    return idempotency_key(workflow_id, step_id)


# -- model and tool steps ---------------------------------------------------------------------


def ask(
    agent: str,
    messages: str | Sequence[Mapping[str, Any]],
    *,
    vars: Mapping[str, Any] | None = None,
    retries: int = 0,
    **params: Any,
) -> dict[str, Any]:
    """Ask ``agent`` (its deployed release) through the failover path, as a step."""

    def run() -> dict[str, Any]:
        from pipeline.runtime.model import parse_chat_request

        runtime = _runtime()
        listed = [{"role": "user", "content": messages}] if isinstance(messages, str) else messages
        body: dict[str, Any] = {"model": agent, "messages": list(listed), **params}
        if vars:
            body["vars"] = dict(vars)
        _, chat = parse_chat_request(body)
        assert _context is not None
        answer = _context.run(runtime.complete(agent, chat))
        if answer.provider is None and answer.fallback != "cached":
            from pipeline.runtime.model import AllProvidersDown

            raise AllProvidersDown(agent, answer.attempts)  # a holding message is no answer
        document: dict[str, Any] = answer.to_json()
        return document

    return step(run, name=f"ask:{agent}", retries=retries)


def tool(
    agent: str, name: str, arguments: Mapping[str, Any], *, retries: int = 0
) -> dict[str, Any]:
    """Call the tool ``name`` of ``agent``'s deployed release at its endpoint, as a step.

    Returns ``{tool, status, body, cached, idempotency_key}``; raises ToolFailed,
    ToolUnavailable or ToolRejected (the step, and unless you catch it the workflow, fails).
    """

    def run() -> dict[str, Any]:
        from pipeline.runtime.settings import Resilience
        from pipeline.runtime.toolcalls import Endpoint

        release = _runtime().release(agent)
        spec = release.tool_endpoints.get(name)
        endpoint = Endpoint.from_tool(spec) if spec is not None else None
        if endpoint is None:
            raise UsageError(
                f"agent {agent!r} ({release.version}) has no tool {name!r} with an endpoint",
                hint="add endpoint: {url, method, read_only} to the tool's file and deploy",
            )
        res = Resilience.from_config(release.resilience)
        return _call(endpoint, arguments, res, agent, release.env)

    return step(run, name=f"tool:{name}", retries=retries)


def call(
    endpoint: Any, arguments: Mapping[str, Any], *, retries: int = 0, resilience: Any = None
) -> dict[str, Any]:
    """Call an :class:`~pipeline.runtime.toolcalls.Endpoint` given in code, as a step."""

    def run() -> dict[str, Any]:
        from pipeline.runtime.settings import Resilience

        return _call(endpoint, arguments, resilience or Resilience(), "", "")

    return step(run, name=f"tool:{endpoint.tool}", retries=retries)


def _call(
    endpoint: Any, arguments: Mapping[str, Any], res: Any, agent: str, env: str
) -> dict[str, Any]:
    from pipeline.runtime.toolcalls import call as call_endpoint

    runtime = _runtime()
    result = call_endpoint(
        endpoint,
        arguments,
        breakers=runtime.breakers,
        store=runtime.store,
        resilience=res,
        key=step_key(),
        agent=agent,
        env=env,
    )
    document: dict[str, Any] = result.to_json()
    return document


# -- running ----------------------------------------------------------------------------------


class Worker:
    """This process as a worker: the runtime for the steps and the durable engine (which
    recovers the workflows left pending). Build with :meth:`open`; close when done."""

    def __init__(self, runtime: Any, engine: Any) -> None:
        self.runtime = runtime
        self.engine = engine

    @classmethod
    def open(
        cls,
        root: str | Path,
        env: str = "production",
        *,
        state_store: str | None = None,
        deployments: str | Path | None = None,
        modules: Sequence[str] = (),
    ) -> Worker:
        from pipeline.runtime.core import Runtime
        from pipeline.runtime.engine import DurableEngine

        root = Path(root)
        load_modules(root, modules)
        runtime = Runtime(
            root,
            env,
            deployments=Path(deployments) if deployments is not None else None,
            state_store=state_store,
        )
        try:
            runtime.refresh()
            attach(runtime)
            log = logging.getLogger("knowngood.workflows").warning
            engine = DurableEngine.open(runtime.state_store_url, root=root, log=log)
        except BaseException:
            detach()
            runtime.close()
            raise
        return cls(runtime, engine)

    def start(self, fn: Callable[..., Any], *args: Any, workflow_id: str | None = None) -> str:
        """Start ``fn(*args)`` (a declared workflow) in the background: its workflow id.
        Starting again with the same ``workflow_id`` does not run it twice (while the store
        keeps it: :mod:`pipeline.runtime.retention`)."""
        from dbos import DBOS, SetWorkflowID

        if workflow_id is None:
            return str(DBOS.start_workflow(fn, *args).get_workflow_id())
        with SetWorkflowID(workflow_id):
            return str(DBOS.start_workflow(fn, *args).get_workflow_id())

    def result(self, workflow_id: str) -> Any:
        """Wait for the workflow's result (raises what it raised)."""
        from dbos import DBOS

        return DBOS.retrieve_workflow(workflow_id).get_result()

    def close(self) -> None:
        try:
            self.engine.shutdown()
        finally:
            detach()
            self.runtime.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
