"""``knowngood serve``: the runtime behind an OpenAI-compatible HTTP server (aiohttp).

- ``POST /v1/chat/completions`` (also ``/chat/completions``): ``model`` names the agent;
  ``stream: true`` answers with server-sent events. The answer says who served it in the
  ``X-Knowngood-Provider``, ``X-Knowngood-Release`` and ``X-Knowngood-Fallback`` headers.
  With ``Idempotency-Key``, a retry is answered once (:mod:`pipeline.runtime.idempotency`).
- ``GET /v1/models``: the agents deployed to the environment.
- ``GET /healthz``: the process answers. ``GET /readyz``: 503 until a release is deployed.
- ``GET /metrics``: Prometheus text format.
- ``GET``/``DELETE /v1/sessions/{id}``: a conversation's turns; its deletion
  (:mod:`pipeline.runtime.sessionroutes`).

Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``: 400 malformed
request (what is wrong), 404 unknown agent (the ones deployed), 4xx from the provider
(returned as is), 503 every provider down (each attempt). Keys come from the environment
and are never logged; neither are requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from pipeline.errors import ConfigError
from pipeline.runtime.accesslog import (
    JsonAccessLogger,
    access_logger,
    json_access_logger,
    request_ids,
    trusted_networks,
)
from pipeline.runtime.auth import api_keys, guard, metrics_need_key
from pipeline.runtime.bodies import body_deadline
from pipeline.runtime.core import Runtime
from pipeline.runtime.idempotency import Claim, claim, refusal
from pipeline.runtime.metrics import CONTENT_TYPE, Metrics
from pipeline.runtime.model import (
    AllProvidersDown,
    BadRequest,
    BudgetExhausted,
    RequestRejected,
    UnknownAgent,
    parse_chat_request,
)
from pipeline.runtime.queueroutes import (
    queue_if_down,
    queue_if_waiting,
    queued_status,
    unqueued_warning,
)
from pipeline.runtime.quietlog import say_parse_errors
from pipeline.runtime.receiver import DeployReceiver, deploy_secret
from pipeline.runtime.requestcheck import load_body
from pipeline.runtime.responses import (
    error_response,
    json_response,
    routing_errors,
    store_unavailable,
)
from pipeline.runtime.retention import Schedule, breaker_events_keep_days, sessions_keep_days
from pipeline.runtime.serveworker import close_engine, needs_engine, start_engine
from pipeline.runtime.serving import (
    ServeRequest,
    deployments_of,
    listen_error,
    listening_address,
)
from pipeline.runtime.sessionroutes import delete_session, get_session
from pipeline.runtime.sessions import SESSION_HEADER, SessionTaken, with_session_header
from pipeline.runtime.sse import answer_headers, stream_response
from pipeline.runtime.store import StoreUnavailable

__all__ = ["make_app", "serve"]

MAX_BODY = 8 * 1024 * 1024
SHUTDOWN_GRACE_S = 30.0  # requests in flight get this long to finish on SIGTERM
_RUNTIME = web.AppKey("runtime", Runtime)
_METRICS = web.AppKey("metrics", Metrics)
_DRAINING = web.AppKey("draining", asyncio.Event)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    runtime = request.app[_RUNTIME]
    raw = await request.read()  # read already, within its size and time limits (bodies.py)
    held = claim(request, runtime.store, raw)  # an Idempotency-Key: answered once
    if isinstance(held, web.StreamResponse):
        request.app[_METRICS].idempotency.labels(refusal(held)).inc()
        return held
    try:
        response = await _chat(request, runtime, raw, held)
    except BaseException:
        if held is not None:
            with contextlib.suppress(StoreUnavailable):
                held.release()
        raise
    if held is not None and not held.settled:
        held.keep_response(response)
    return response


async def _chat(
    request: web.Request, runtime: Runtime, raw: bytes, held: Claim | None
) -> web.StreamResponse:
    data, problem = load_body(raw)
    if problem is not None:
        return error_response(400, problem, "invalid_request_error")
    try:
        agent, chat = parse_chat_request(data)
        chat = with_session_header(chat, request.headers.get(SESSION_HEADER))
        release = runtime.release(agent)
    except BadRequest as e:
        return error_response(400, e.message, "invalid_request_error")
    except UnknownAgent as e:
        return error_response(
            404, e.message, "invalid_request_error", "model_not_found", agents=e.known
        )
    try:
        later = await queue_if_waiting(request, runtime, release, chat)
        if later is not None:  # the session has queued requests: this one goes behind them
            return later
        if chat.stream:
            stream = await runtime.ask_stream(release, chat)
            stall_s = runtime.engine.resilience(release).timeout_s
            return await stream_response(
                request, stream, held, runtime.health, chat.session, stall_s
            )
        answer = await runtime.ask(release, chat)
    except SessionTaken as e:
        return error_response(409, e.message, "invalid_request_error", "session_taken")
    except BadRequest as e:  # the conversation, its session's history included
        return error_response(400, e.message, "invalid_request_error")
    except ConfigError as e:  # a prompt variable the request did not send
        return error_response(
            400, e.message + (f" ({e.hint})" if e.hint else ""), "invalid_request_error"
        )
    except RequestRejected as e:
        status = e.status if 400 <= e.status < 500 else 400
        return error_response(
            status,
            e.message,
            "invalid_request_error",
            e.code,
            attempts=[a.to_json() for a in e.attempts],
        )
    except BudgetExhausted as e:
        return error_response(
            429,
            e.message,
            "rate_limit_error",
            "budget_exhausted",
            headers={"Retry-After": str(e.retry_after_s)},
        )
    except AllProvidersDown as e:
        queued = await queue_if_down(request, runtime, release, chat, e)
        if queued is not None:
            return queued
        return error_response(
            503,
            e.message,
            "service_unavailable",
            "all_providers_down",
            attempts=[a.to_json() for a in e.attempts],
        )
    return json_response(200, answer.response, answer_headers(answer))


async def models(request: web.Request) -> web.Response:
    runtime = request.app[_RUNTIME]
    data = [
        {
            "id": release.agent,
            "object": "model",
            "created": int(release.loaded_at),
            "owned_by": f"knowngood:{release.env}:{release.version}",
        }
        for release in runtime.releases.all()
    ]
    return json_response(200, {"object": "list", "data": data})


async def queued(request: web.Request) -> web.Response:
    """A request queued while every provider was down: its status, then its answer."""
    return await queued_status(request, request.app[_RUNTIME])


async def session(request: web.Request) -> web.Response:
    """A conversation's turns (GET) or its deletion (DELETE): see pipeline.runtime.sessionroutes."""
    if request.method == "DELETE":
        return await delete_session(request, request.app[_RUNTIME])
    return await get_session(request, request.app[_RUNTIME])


async def healthz(request: web.Request) -> web.Response:
    return json_response(200, {"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[_RUNTIME]
    agents = {r.agent: r.version for r in runtime.releases.all()}
    document: dict[str, Any] = {"ready": bool(agents), "env": runtime.env, "agents": agents}
    if not runtime.health.up:  # still answering, without breakers and sessions
        document["state_store"] = "unavailable"
    if missing := runtime.missing_keys():  # still ready: the other providers answer
        document["missing_keys"] = missing
    if request.app[_DRAINING].is_set():  # stopping: out of the load balancer's rotation
        return json_response(503, {**document, "ready": False, "draining": True})
    if runtime.releases.errors:
        document["errors"] = dict(runtime.releases.errors)
    if not agents:
        document["reason"] = (
            f"no release is deployed to {runtime.env} in {runtime.releases.env_dir}"
        )
        return json_response(503, document)
    return json_response(200, document)


async def metrics(request: web.Request) -> web.Response:
    body = await asyncio.to_thread(request.app[_METRICS].exposition)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def make_app(
    runtime: Runtime,
    observer: Metrics,
    keys: tuple[bytes, ...] | None = None,
    metrics_key: bool = False,
    body_s: float = 75.0,
) -> web.Application:
    """The routes; with ``keys`` (:mod:`pipeline.runtime.auth`) the /v1/ ones need one, and
    /metrics too with ``metrics_key``. A body must be all in ``body_s`` after its headers."""
    middlewares = [
        routing_errors,
        store_unavailable(runtime.health),
        *([guard(keys, metrics_key)] if keys else []),
        body_deadline(body_s, MAX_BODY),  # after the key: no body is read for a 401
    ]
    app = web.Application(client_max_size=MAX_BODY, middlewares=middlewares)
    request_ids(app)
    app[_RUNTIME] = runtime
    app[_METRICS] = observer
    app[_DRAINING] = asyncio.Event()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/queued/{id}", queued)
    app.router.add_get("/v1/sessions/{id}", session)
    app.router.add_delete("/v1/sessions/{id}", session)
    return app


async def serve(root: Path, request: ServeRequest) -> None:
    """Serve until SIGTERM or SIGINT; requests in flight then finish (up to 30 s). (Over 60
    lines on purpose: every start step and its stop, in one place, in order.)

    ``request.receive_deploys``: also be the http deploy target (:mod:`pipeline.runtime.receiver`),
    keeping what it receives under ``deployments`` (default ``.knowngood/received``).

    With ``request.workflows`` (modules that declare durable workflows) the process is also the
    store's worker: the durable engine starts before anything else, so the workflows a killed
    worker left pending resume at once (see :mod:`pipeline.runtime.engine`).
    """
    log, env, state_store = request.say, request.env, request.state_store
    receiver_secret = deploy_secret(root) if request.receive_deploys else None
    keys = api_keys(root)  # before anything starts: a key that is not set stops serve here
    metrics_key = metrics_need_key(root)
    trusted = trusted_networks(request.trusted_proxies)  # a bad one stops serve here (exit 2)
    requests_log = (
        (access_logger(request.access_log), json_access_logger(trusted))
        if request.access_log
        else None
    )
    deployments = deployments_of(root, request)
    from pipeline.runtime.backup.runner import start_backups
    from pipeline.runtime.incidents import RuntimeIncidents

    observer = Metrics(log)
    incidents = RuntimeIncidents.start(root, env, observer, log)
    runtime = Runtime(
        root, env, deployments=deployments, state_store=state_store, observer=incidents
    )
    observer.watch(runtime)
    runtime.health.log = log
    incidents.attach(runtime)
    engine = None
    schedule = None
    retention: list[Schedule] = []
    try:
        schedule = start_backups(root, state_store, log) if request.backups else None
        if schedule is not None:
            observer.registry.register(schedule[1])
        runtime.refresh()
        for var, providers in runtime.missing_keys().items():
            log(
                f"warning: {var} is not set: {', '.join(providers)} will be skipped "
                "(missing_key) until serve is restarted with it"
            )
        if (days := sessions_keep_days(root)) is not None:
            retention.append(Schedule.sessions(runtime.store, days, log))
        if (days := breaker_events_keep_days(root)) is not None:
            retention.append(Schedule.breaker_events(runtime.store, days, log))
        retention.append(Schedule.replays(runtime.store, log))
        if needs_engine(runtime, request.workflows):
            engine = await start_engine(runtime, request.workflows, observer, log)
        started = time.perf_counter()
        await runtime.warm_up()
        # What is alive now (litellm's modules and tables, the releases) lives as long as the
        # process: out of the collector's sight, a full collection under load walks only what
        # requests make.
        gc.freeze()
        log(f"providers ready in {time.perf_counter() - started:.1f}s")
        app = make_app(runtime, observer, keys, metrics_key, request.idle_timeout_s)
        if receiver_secret is not None:
            DeployReceiver(runtime, receiver_secret).install(app)
        where = (request.host, request.port, request.reuse_port, request.idle_timeout_s)
        say_parse_errors(log)  # aiohttp's parse errors: one line, without the request's bytes
        await _run_until_stopped(app, runtime, where, requests_log, request.drain_s, log)
    finally:
        if schedule is not None:
            schedule[0].stop()
        for pruning in retention:
            await asyncio.to_thread(pruning.stop)
        if engine is not None:
            await asyncio.to_thread(close_engine, engine)
        incidents.close()
        runtime.close()


async def _run_until_stopped(
    app: web.Application,
    runtime: Runtime,
    where: tuple[str, int, bool, float],
    requests_log: tuple[logging.Logger, type[AbstractAccessLogger]] | None,
    drain_s: float,
    log: Callable[[str], None],
) -> None:
    """Listen, follow the deploy target, and on SIGTERM/SIGINT let requests in flight finish;
    with ``drain_s``, first say 503 on /readyz that long while still answering (a second
    signal cuts it short)."""
    host, port, reuse_port, idle_s = where
    runner = web.AppRunner(
        app,
        keepalive_timeout=idle_s,  # from the connection's start too: a bound on slowloris
        lingering_time=min(10.0, idle_s),  # after a 408 or 413: the rest of a body, unused
        access_log=requests_log[0] if requests_log else None,
        access_log_class=requests_log[1] if requests_log else JsonAccessLogger,
        shutdown_timeout=SHUTDOWN_GRACE_S,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    try:
        await site.start()
    except OSError as e:  # taken since serve checked it, while the providers warmed up
        raise listen_error(host, port, e) from None
    follower = asyncio.create_task(
        runtime.follow(on_change=unqueued_warning(runtime, log), on_error=log)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log(f"listening on {listening_address(runner, host)} ({_summary(runtime)})")
    try:
        await stop.wait()
        if drain_s > 0:
            stop.clear()
            app[_DRAINING].set()
            log(f"draining: /readyz says 503 for {drain_s:g}s while requests are still answered")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), drain_s)
    finally:
        log("stopping: finishing the requests in flight")
        if runtime.queue is not None:  # queued requests stay in the store for the next start
            runtime.queue.stop()
        follower.cancel()
        await runner.cleanup()
        await runtime.aclose()


def _summary(runtime: Runtime) -> str:
    releases = runtime.releases.all()
    if not releases:
        return f"{runtime.env}: nothing deployed yet, /readyz says 503"
    return f"{runtime.env}: " + ", ".join(f"{r.agent} {r.version}" for r in releases)
