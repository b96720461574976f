"""``serve --receive-deploys``: the runtime is the ``http`` deploy target.

When knowngood.yaml's ``deploy.target`` is ``{type: http, url, secret_env, current_url}``, the
runtime cannot read what was deployed back from the target; so it can *be* the target. Point
``url`` at ``http://HOST:PORT/knowngood/deploy`` and ``current_url`` at
``http://HOST:PORT/knowngood/current`` of a ``serve --receive-deploys``, and:

- ``POST /knowngood/deploy`` takes the bundle exactly as :class:`pipeline.targets.HttpTarget`
  sends it: the signature (HMAC-SHA256 of the exact body with the secret in ``$secret_env``)
  is checked in constant time before the body is parsed; the bundle is verified (schema and
  content hash) and must be for this runtime's environment; it is then published into the
  runtime's own directory (``<deployments>/<env>/<agent>/current.json``, the directory target's
  atomic flip) and served at once. A restarted serve serves what it last received.
- ``GET /knowngood/current?agent=A&env=E`` (signed ``GET\\n<agent>\\n<env>``) answers
  ``{"content_hash": ...}`` of the release being *served*, so ``deploy --check``, ``status``
  and auto-revert see what runs.

Nothing is written unless the signature, the bundle and the environment are all right. The
secret is never logged or echoed. A signed request can be replayed by whoever captured it (the
protocol has no nonce): run the receiver behind TLS or on a private network.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from pipeline.errors import ConfigError, UsageError

__all__ = ["DEFAULT_RECEIVED", "DeployReceiver", "deploy_secret", "receiver_secret_env"]

DEFAULT_RECEIVED = ".knowngood/received"
MAX_BUNDLE = 8 * 1024 * 1024
SIGNATURE = "X-Knowngood-Signature"


def receiver_secret_env(root: Path) -> str:
    """The variable holding the deploy secret: the http deploy target's ``secret_env``."""
    from pipeline.repo import load_settings

    target = load_settings(root).deploy.get("target") or {}
    if target.get("type") != "http" or not target.get("secret_env"):
        raise UsageError(
            "--receive-deploys needs knowngood.yaml's deploy.target to be of type http "
            f"(it is {target.get('type') or 'directory'!r})",
            hint="set deploy.target to {type: http, url: http://HOST:PORT/knowngood/deploy, "
            "secret_env: NAME, current_url: http://HOST:PORT/knowngood/current}",
        )
    return str(target["secret_env"])


def _signed(secret: bytes, data: bytes, header: str | None) -> bool:
    expected = "sha256=" + hmac.new(secret, data, hashlib.sha256).hexdigest()
    sent = header.encode(errors="surrogateescape") if header is not None else None  # as sent
    return sent is not None and hmac.compare_digest(expected.encode(), sent)


def _answer(status: int, document: Mapping[str, Any]) -> web.Response:
    return web.json_response(dict(document), status=status)


class DeployReceiver:
    """The two endpoints of the http target, bound to one runtime and one secret."""

    def __init__(self, runtime: Any, secret: str) -> None:
        if not secret:
            raise UsageError("the deploy secret is empty: --receive-deploys would accept anyone")
        self.runtime = runtime
        self._secret = secret.encode()

    def install(self, app: web.Application) -> None:
        app.router.add_post("/knowngood/deploy", self.deploy)
        app.router.add_get("/knowngood/current", self.current)

    async def deploy(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BUNDLE:
            return _answer(413, {"error": f"a bundle is at most {MAX_BUNDLE} bytes"})
        body = await request.read()
        if not _signed(self._secret, body, request.headers.get(SIGNATURE)):
            return _answer(401, {"error": f"{SIGNATURE} does not sign this body"})
        try:
            bundle = json.loads(body)
        except ValueError as e:
            return _answer(400, {"error": f"the body is not JSON: {e}"})
        if not isinstance(bundle, dict):
            return _answer(400, {"error": "the body is not a bundle (a JSON object)"})
        try:
            return await asyncio.to_thread(self._publish, bundle)
        except ConfigError as e:
            return _answer(400, {"error": e.message})

    def _publish(self, bundle: dict[str, Any]) -> web.Response:
        from pipeline.bundle import verify_bundle
        from pipeline.targets import DirectoryTarget

        verify_bundle(bundle)
        env = self.runtime.env
        if bundle["env"] != env:
            return _answer(
                409, {"error": f"this runtime serves {env}; the bundle is for {bundle['env']}"}
            )
        result = DirectoryTarget(self.runtime.releases.folder).publish(bundle)
        if not result.ok:
            return _answer(500, {"error": result.message})
        agent = str(bundle["agent"])
        self.runtime.refresh(only=agent)
        served = self.runtime.releases.get(agent)
        if served is None or served.content_hash != bundle["content_hash"]:
            why = self.runtime.releases.errors.get(agent, "it was not loaded")
            return _answer(500, {"error": f"received but not served: {why}"})
        return _answer(
            200,
            {
                "agent": agent,
                "env": env,
                "release": served.version,
                "content_hash": served.content_hash,
                "serving": True,
            },
        )

    async def current(self, request: web.Request) -> web.Response:
        agent = request.query.get("agent", "")
        env = request.query.get("env", "")
        message = f"GET\n{agent}\n{env}".encode()
        if not _signed(self._secret, message, request.headers.get(SIGNATURE)):
            return _answer(401, {"error": f"{SIGNATURE} does not sign GET, agent and env"})
        if env != self.runtime.env:
            return _answer(409, {"error": f"this runtime serves {self.runtime.env}, not {env}"})
        served = self.runtime.releases.get(agent)
        return _answer(200, {"content_hash": served.content_hash if served else None})


def deploy_secret(root: Path) -> str:
    """The deploy secret from the environment; UsageError when it is not set."""
    from pipeline.redaction import secret_env

    name = receiver_secret_env(root)
    secret = secret_env(name) or ""
    if not secret:
        raise UsageError(
            f"${name} is not set: --receive-deploys checks every deploy's signature with it",
            hint=f"export {name} (the same secret the deploying side signs with)",
        )
    return secret
