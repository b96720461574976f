"""``runtime.api_key_env``: a real ``serve`` takes /v1/ requests only with one of its keys (sent
by the real OpenAI SDK as its api_key), keeps the probes and metrics open, never logs a key, and
does not start while the variable is unset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from fakeproviders import FakeProvider
from runtimeutil import AGENT, ENV, Serve, World, http, make_world, naming_responder, wait_for

OLD = "kg-old-4f1d2a9c7e"  # knowngood: allow-secret
NEW = "kg-new-8b3e6f0d15"  # knowngood: allow-secret
SETTINGS = "runtime:\n  api_key_env: KG_SERVE_KEYS\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with FakeProvider(naming_responder("primary")) as primary:
        root = tmp_path_factory.mktemp("auth") / "repo"
        yield make_world(root, {"primary": primary}, extra_settings=SETTINGS)


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[Serve]:
    log = world.root.parent / "access.log"
    keys = {"KG_SERVE_KEYS": f"{OLD}, {NEW}"}
    with Serve(world.root, "--access-log", str(log), env=keys) as running:
        yield running


def chat(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    body = {"model": AGENT, "messages": [{"role": "user", "content": "Hi"}]}
    got = http(f"{url}/v1/chat/completions", body, headers=headers)
    return got.status, got.json()


def test_a_request_without_one_of_the_keys_is_refused(server: Serve) -> None:
    for headers in (
        None,
        {"Authorization": "Bearer kg-wrong-000000000"},
        {"Authorization": f"Basic {OLD}"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {OLD},{NEW}"},
        {"Authorization": "Bearer \xff\xfe"},  # not UTF-8 on the wire: a 401 too, no 500
    ):
        status, body = chat(server.url, headers)
        assert status == 401, headers
        assert body["error"]["code"] == "invalid_api_key"  # type: ignore[index]
    got = http(f"{server.url}/v1/models")
    assert got.status == 401 and got.headers["www-authenticate"] == "Bearer"
    assert http(f"{server.url}/v1/sessions/chat-1").status == 401
    assert http(f"{server.url}/v1/sessions/chat-1", method="DELETE").status == 401


def test_either_key_works_for_an_openai_client_and_probes_stay_open(server: Serve) -> None:
    for key in (OLD, NEW):  # both, while a rotation is under way
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
        answer = client.chat.completions.create(
            model=AGENT, messages=[{"role": "user", "content": "Hi"}]
        )
        assert answer.choices[0].message.content.startswith("primary: ")  # type: ignore[union-attr]
    wrong = openai.OpenAI(base_url=f"{server.url}/v1", api_key="kg-wrong-1", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    for path in ("/healthz", "/readyz", "/metrics"):
        assert http(f"{server.url}{path}").status == 200, path
    assert OLD not in server.stderr and NEW not in server.stderr
    # an Idempotency-Key is the client's own: another key's same one is another request
    body = {"model": AGENT, "messages": [{"role": "user", "content": "Hi"}]}
    for key in (OLD, NEW):
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "same"}
        got = http(f"{server.url}/v1/chat/completions", body, headers=headers)
        assert got.status == 200 and "idempotent-replayed" not in got.headers
    # the access log says which key each request used, by its place in the variable
    log = server.root.parent / "access.log"
    lines = wait_for(lambda: _chats(log) if len(_chats(log)) >= 4 else None)  # 4 chats above
    assert [(line["status"], line["key"]) for line in lines[-4:]] == [(200, 1), (200, 2)] * 2
    assert all(line["key"] is None for line in _lines(log) if line["status"] == 401)
    text = log.read_text()
    assert OLD not in text and NEW not in text


def _lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _chats(log: Path) -> list[dict[str, Any]]:
    return [
        line
        for line in _lines(log)
        if line["route"] == "/v1/chat/completions" and line["status"] == 200
    ]


def test_serve_does_not_start_while_the_variable_is_unset(world: World) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "serve", "--repo", str(world.root), "--port", "0"],
        env={k: v for k, v in {**os.environ, **ENV}.items() if k != "KG_SERVE_KEYS"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "$KG_SERVE_KEYS is not set" in done.stderr
    assert "listening" not in done.stderr


def test_metrics_can_need_a_key_too(tmp_path: Path) -> None:
    settings = SETTINGS + "  metrics_need_key: true\n"
    with FakeProvider(naming_responder("primary")) as primary:
        world = make_world(tmp_path / "repo", {"primary": primary}, extra_settings=settings)
        with Serve(world.root, env={"KG_SERVE_KEYS": NEW}) as running:
            bare = http(f"{running.url}/metrics")
            keyed = http(f"{running.url}/metrics", headers={"Authorization": f"Bearer {NEW}"})
            probes = [http(f"{running.url}{p}").status for p in ("/healthz", "/readyz")]
    assert bare.status == 401 and bare.json()["error"]["code"] == "invalid_api_key"
    assert keyed.status == 200 and b"knowngood_requests_total" in keyed.body
    assert probes == [200, 200]  # the probes stay open
    # without api_key_env there is no key to send: serve does not start
    world.write(
        "knowngood.yaml",
        world.root.joinpath("knowngood.yaml")
        .read_text()
        .replace(SETTINGS.splitlines()[1] + "\n", ""),
    )
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "serve", "--repo", str(world.root), "--port", "0"],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "runtime.metrics_need_key is set without runtime.api_key_env" in done.stderr
