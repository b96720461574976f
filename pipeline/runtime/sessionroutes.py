"""``serve``'s session routes: read a conversation back, and delete it.

- ``GET /v1/sessions/{id}``: ``{id, object: "knowngood.session", agent, env, turns: [...]}``,
  each turn as stored (the client's messages, the answer, who served it, each attempt);
  ``?after=N``: only the turns after the N-th (a client that has N fetches the new ones).
- ``DELETE /v1/sessions/{id}``: the session and its turns are deleted (with its cached
  answers and the queue's settled requests of it): ``{id, object: "knowngood.session.deleted", deleted: true, turns: N}``.
  409 ``session_busy`` while the outage queue still holds a request of it.

Both answer 404 ``session_not_found`` for a session of another environment than the one
``serve`` serves, and 400 for a malformed id. The store is read and written off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from pipeline.runtime.model import BadRequest, check_session_id
from pipeline.runtime.responses import error_response, json_response
from pipeline.runtime.sessions import SessionBusy

__all__ = ["delete_session", "get_session"]


def _session_id(request: web.Request) -> str:
    return check_session_id(request.match_info["id"], "the session id in the URL")


def _not_found(session: str, env: str) -> web.Response:
    return error_response(
        404, f"no session {session!r} in {env}", "invalid_request_error", "session_not_found"
    )


async def get_session(request: web.Request, runtime: Any) -> web.Response:
    try:
        session = _session_id(request)
    except BadRequest as e:
        return error_response(400, e.message, "invalid_request_error", "invalid_session")
    after = request.query.get("after", "0")
    if not (after.isascii() and after.isdigit()) or len(after) > 9:  # not "²": int() fails
        message = f"'after' must be a turn number (0 or more), not {after[:40]!r}"
        return error_response(400, message, "invalid_request_error", "invalid_after")
    found = await asyncio.to_thread(
        runtime.sessions.history, session, runtime.env, None, int(after)
    )
    if found is None:
        return _not_found(session, runtime.env)
    document = {
        "id": session,
        "object": "knowngood.session",
        "agent": found[0],
        "env": runtime.env,
        "turns": [t.to_json() for t in found[1]],
    }
    return json_response(200, document)


async def delete_session(request: web.Request, runtime: Any) -> web.Response:
    try:
        session = _session_id(request)
    except BadRequest as e:
        return error_response(400, e.message, "invalid_request_error", "invalid_session")
    try:
        turns = await asyncio.to_thread(runtime.sessions.forget, session, runtime.env)
    except SessionBusy as e:
        return error_response(409, e.message, "invalid_request_error", "session_busy")
    if turns is None:
        return _not_found(session, runtime.env)
    document = {
        "id": session,
        "object": "knowngood.session.deleted",
        "deleted": True,
        "turns": turns,
    }
    return json_response(200, document)
