"""Deploy targets: a directory flipped atomically, a user command, a signed HTTP POST."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from bundleutil import make_bundle

from pipeline.bundle import canonical_json
from pipeline.deploy.lock import lock_s
from pipeline.errors import DeployError
from pipeline.targets import (
    CommandTarget,
    DirectoryTarget,
    HttpTarget,
    PublishResult,
    make_target,
    version_of,
)

SECRET = "s3cr3t-value-for-tests"  # knowngood: allow-secret


def test_version_of() -> None:
    assert version_of(make_bundle(release="bot/v1.2.3")) == "1.2.3"
    assert version_of(make_bundle(release="nightly")) == "nightly"
    assert version_of(make_bundle(release=None)) == "0123456789ab"


def test_make_target(tmp_path: Path) -> None:
    default = make_target(None, tmp_path)
    assert (
        isinstance(default, DirectoryTarget)
        and default.path == tmp_path / ".knowngood" / "deployments"
    )
    absolute = make_target({"type": "directory", "path": str(tmp_path / "out")}, tmp_path / "repo")
    assert isinstance(absolute, DirectoryTarget) and absolute.path == tmp_path / "out"
    assert isinstance(
        make_target({"type": "command", "command": ["./deploy.sh"]}, tmp_path), CommandTarget
    )
    assert isinstance(
        make_target({"type": "http", "url": "http://x", "secret_env": "S"}, tmp_path), HttpTarget
    )
    # a publish waits the target's own timeout_s, else the default; a caller's own wins
    command = {"type": "command", "command": ["./deploy.sh"]}
    assert make_target(command, tmp_path).timeout_s == 300  # type: ignore[attr-defined]
    slow = make_target({**command, "timeout_s": 900}, tmp_path)
    assert slow.timeout_s == 900 and lock_s(slow) == 2 * 900 + 60  # type: ignore[attr-defined]
    assert make_target({**command, "timeout_s": 900}, tmp_path, timeout_s=5).timeout_s == 5  # type: ignore[attr-defined]
    http = {"type": "http", "url": "http://x", "secret_env": "S"}
    assert make_target(http, tmp_path).timeout_s == 30  # type: ignore[attr-defined]
    assert make_target({**http, "timeout_s": 120}, tmp_path).timeout_s == 120  # type: ignore[attr-defined]
    with pytest.raises(DeployError, match=r"unknown deploy\.target type 'ftp'"):
        make_target({"type": "ftp"}, tmp_path)
    with pytest.raises(DeployError, match="missing 'url'"):
        make_target({"type": "http", "secret_env": "S"}, tmp_path)


# -- directory ------------------------------------------------------------------------------------


def test_directory_publish_flips_current_and_keeps_history(tmp_path: Path) -> None:
    target = DirectoryTarget(tmp_path / "deployments")
    assert target.read_current("bot", "production") is None
    v1, v2 = make_bundle("one", "bot/v1.0.0"), make_bundle("two", "bot/v1.1.0")

    r1 = target.publish(v1)
    assert r1.ok and r1.target == "directory"
    folder = tmp_path / "deployments" / "production" / "bot"
    assert r1.location == str(folder / f"{v1['content_hash']}.json")
    assert r1.message == f"bot/v1.0.0 is current in {folder}"  # the agent named once
    elsewhere = DirectoryTarget(tmp_path / "unreleased").publish(make_bundle("zero", None))
    assert elsewhere.message.startswith("bot at 0123456789ab is current in ")
    assert target.read_current("bot", "production") == v1

    r2 = target.publish(v2)
    assert r2.ok
    assert target.read_current("bot", "production") == v2
    assert json.loads((folder / f"{v1['content_hash']}.json").read_text()) == v1  # kept
    current = folder / "current.json"
    assert current.is_symlink() and os.readlink(current) == f"{v2['content_hash']}.json"

    assert target.publish(v1).ok  # a rollback re-points at the kept bundle
    assert target.read_current("bot", "production") == v1
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["current.json", f"{v1['content_hash']}.json", f"{v2['content_hash']}.json"]
    )  # no temporary files left behind
    assert len(target.bundles("bot", "production")) == 2
    assert target.read_current("bot", "staging") is None


def test_directory_readers_never_see_a_partial_current(tmp_path: Path) -> None:
    target = DirectoryTarget(tmp_path / "d")
    bundles = [make_bundle(f"prompt {i} " + "x" * 20_000) for i in range(2)]
    target.publish(bundles[0])
    hashes = {b["content_hash"] for b in bundles}
    stop = threading.Event()
    seen: list[str] = []
    problems: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                current = target.read_current("bot", "production")
                assert current is not None
                seen.append(current["content_hash"])
            except BaseException as e:  # pragma: no cover - reported below
                problems.append(e)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(100):
        assert target.publish(bundles[i % 2]).ok
    stop.set()
    thread.join()
    assert problems == []
    assert seen and set(seen) <= hashes


def test_directory_refuses_a_tampered_bundle(tmp_path: Path) -> None:
    bundle = make_bundle()
    bundle["system_prompt"] = "changed after hashing"
    with pytest.raises(DeployError, match="content_hash does not match"):
        DirectoryTarget(tmp_path).publish(bundle)
    bad = make_bundle()
    bad["agent"] = "../../escape"
    with pytest.raises(DeployError, match="refusing to publish"):
        DirectoryTarget(tmp_path).publish(bad)
    assert list(tmp_path.iterdir()) == []


def test_directory_write_failure_is_a_result(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = DirectoryTarget(blocker).publish(make_bundle())
    assert not result.ok and "could not write" in result.message
    with pytest.raises(DeployError, match="directory target: could not write"):
        result.raise_for_failure()


# -- command -------------------------------------------------------------------------------------

RECORDER = """
import json, os, sys
bundle = json.load(open(sys.argv[-1]))
keys = ["KNOWNGOOD_AGENT", "KNOWNGOOD_ENV", "KNOWNGOOD_VERSION", "KNOWNGOOD_RELEASE", "KNOWNGOOD_CONTENT_HASH"]
out = {"args": sys.argv[1:-1], "cwd": os.getcwd(), "env": {k: os.environ.get(k) for k in keys},
       "hash": bundle["content_hash"]}
open("deployed.json", "w").write(json.dumps(out))
print("deployed", bundle["agent"])
"""


def test_command_success(tmp_path: Path) -> None:
    (tmp_path / "deploy.py").write_text(RECORDER)
    bundle = make_bundle(release="bot/v1.2.0")
    target = make_target(
        {"type": "command", "command": [sys.executable, "deploy.py", "--fast"]}, tmp_path
    )
    result = target.publish(bundle)
    assert result.ok, result.message
    assert result.output.strip() == "deployed bot"
    seen = json.loads((tmp_path / "deployed.json").read_text())
    assert seen["args"] == ["--fast"]
    assert Path(seen["cwd"]).resolve() == tmp_path.resolve()
    assert seen["hash"] == bundle["content_hash"]
    assert seen["env"] == {
        "KNOWNGOOD_AGENT": "bot",
        "KNOWNGOOD_ENV": "production",
        "KNOWNGOOD_VERSION": "1.2.0",
        "KNOWNGOOD_RELEASE": "bot/v1.2.0",
        "KNOWNGOOD_CONTENT_HASH": bundle["content_hash"],
    }


def test_command_failure_shows_its_output(tmp_path: Path) -> None:
    script = (
        "import sys; print('uploading...'); print('quota exceeded', file=sys.stderr); sys.exit(7)"
    )
    result = CommandTarget([sys.executable, "-c", script], cwd=tmp_path).publish(make_bundle())
    assert not result.ok
    assert "exited 7" in result.message
    assert "uploading..." in result.message and "quota exceeded" in result.message
    with pytest.raises(DeployError) as info:
        result.raise_for_failure()
    assert info.value.exit_code == 3


def test_command_not_found(tmp_path: Path) -> None:
    result = CommandTarget(["./no-such-deploy.sh"], cwd=tmp_path).publish(make_bundle())
    assert not result.ok
    assert "cannot run ./no-such-deploy.sh" in result.message


@pytest.mark.skipif(sys.platform == "win32", reason="process groups")
def test_command_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    # A grandchild keeps the output pipe open: only killing the process group ends the wait.
    script = tmp_path / "slow.sh"
    script.write_text("#!/bin/sh\necho starting\nsleep 60 &\nsleep 60\n")
    script.chmod(0o755)
    result = CommandTarget([str(script)], cwd=tmp_path, timeout_s=0.5).publish(make_bundle())
    assert not result.ok
    assert "timed out after 0.5s" in result.message
    assert "starting" in result.message
    assert result.duration_s < 30


# -- http ----------------------------------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the timeout test hangs up before the answer: a broken pipe is expected


class Receiver:
    """A loopback deploy endpoint that checks the signature like a real one would."""

    def __init__(self) -> None:
        self.secret = SECRET
        self.status = 200
        self.reply = b'{"ok": true}'
        self.redirect: str | None = None
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.runs: dict[tuple[str, str], str | None] = {}  # (agent, env) -> content hash
        self.get_status = 200
        self.release = threading.Event()
        self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                receiver.release.wait(10)
                expected = (
                    "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                )
                if receiver.redirect:
                    self.send_response(302)
                    self.send_header("Location", receiver.redirect)
                    self.end_headers()
                    return
                ok = hmac.compare_digest(expected, self.headers.get("X-Knowngood-Signature", ""))
                self.send_response(receiver.status if ok else 403)
                self.end_headers()
                self.wfile.write(receiver.reply if ok else b"bad signature")

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                agent, env = query["agent"][0], query["env"][0]
                receiver.requests.append((dict(self.headers.items()), self.path.encode()))
                signed = f"GET\n{agent}\n{env}".encode()
                expected = (
                    "sha256="
                    + hmac.new(receiver.secret.encode(), signed, hashlib.sha256).hexdigest()
                )
                if not hmac.compare_digest(expected, self.headers.get("X-Knowngood-Signature", "")):
                    self.send_response(403)
                    self.end_headers()
                    return
                self.send_response(receiver.get_status)
                self.end_headers()
                if (agent, env) in receiver.runs:
                    content = receiver.runs[(agent, env)]
                    self.wfile.write(json.dumps({"content_hash": content}).encode())
                else:
                    self.wfile.write(b"<html>not json</html>")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/deploy"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KG_DEPLOY_SECRET", SECRET)
    r = Receiver()
    yield r
    r.close()


def http_target(receiver: Receiver, timeout_s: float = 10.0) -> HttpTarget:
    return HttpTarget(receiver.url, "KG_DEPLOY_SECRET", timeout_s=timeout_s)


def test_http_posts_a_signed_bundle(receiver: Receiver) -> None:
    bundle = make_bundle(release="bot/v2.0.0")
    result = http_target(receiver).publish(bundle)
    assert result.ok, result.message
    assert result.location == receiver.url
    assert "answered 200" in result.message
    headers, body = receiver.requests[0]
    assert body == canonical_json(bundle).encode()
    assert json.loads(body) == bundle
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Knowngood-Agent"] == "bot"
    assert headers["X-Knowngood-Env"] == "production"
    assert headers["X-Knowngood-Version"] == "2.0.0"
    assert headers["X-Knowngood-Content-Hash"] == bundle["content_hash"]
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Knowngood-Signature"] == f"sha256={expected}"


def test_http_rejection_never_shows_the_secret(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.status = 500
    receiver.reply = f"internal error, secret was {SECRET}".encode()
    result = http_target(receiver).publish(make_bundle())
    assert not result.ok
    assert "answered 500" in result.message
    assert SECRET not in result.message and SECRET not in result.output
    assert "***" in result.message

    monkeypatch.setenv("KG_DEPLOY_SECRET", "the-wrong-secret")
    result = http_target(receiver).publish(make_bundle())
    assert not result.ok and "answered 403: bad signature" in result.message
    assert "the-wrong-secret" not in result.message


def test_http_missing_secret_is_a_deploy_error(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KG_DEPLOY_SECRET")
    with pytest.raises(DeployError, match=r"\$KG_DEPLOY_SECRET is not set") as info:
        http_target(receiver).publish(make_bundle())
    assert info.value.exit_code == 3
    assert receiver.requests == []


def test_http_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.redirect = "http://127.0.0.1:9/elsewhere"
    result = http_target(receiver).publish(make_bundle())
    assert not result.ok
    assert "answered 302" in result.message and "redirects are not followed" in result.message


def test_http_unreachable_and_timeout(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KG_DEPLOY_SECRET", SECRET)
    closed = HttpTarget(
        f"http://user:{SECRET}@127.0.0.1:1/deploy?token={SECRET}", "KG_DEPLOY_SECRET"
    )
    result = closed.publish(make_bundle())
    assert not result.ok and "could not reach http://127.0.0.1:1/deploy" in result.message
    assert SECRET not in result.message and SECRET not in result.location

    receiver.release.clear()  # the endpoint holds the request until released
    result = http_target(receiver, timeout_s=0.3).publish(make_bundle())
    receiver.release.set()
    assert not result.ok
    assert "timed out after 0.3s" in result.message


def test_publish_result_to_dict() -> None:
    r = PublishResult(True, "directory", "/x", "ok", 0.1)
    assert r.raise_for_failure() is r
    assert r.to_dict() == {
        "ok": True,
        "target": "directory",
        "location": "/x",
        "message": "ok",
        "duration_s": 0.1,
    }


# -- reporting what runs ------------------------------------------------------------------------


def test_directory_reports_what_runs_and_removes_it(tmp_path: Path) -> None:
    target = DirectoryTarget(tmp_path / "d")
    elsewhere = target.running("bot", "production")  # no deployments folder on this machine
    assert not elsewhere.known and "does not exist" in elsewhere.how
    (tmp_path / "d").mkdir()
    nothing = target.running("bot", "production")
    assert nothing.known and nothing.content_hash is None
    v1 = make_bundle("one")
    assert target.publish(v1).ok
    seen = target.running("bot", "production")
    assert seen.known and seen.content_hash == v1["content_hash"]
    assert target.remove("bot", "production").ok
    assert target.running("bot", "production").content_hash is None
    assert target.bundles("bot", "production")  # kept for rollbacks
    (target.folder("bot", "production") / "current.json").write_text("{not json")
    broken = target.running("bot", "production")
    assert not broken.known and "unreadable" in broken.how


CURRENT = """
import json, os, pathlib, sys
state = pathlib.Path("runs-" + os.environ["KNOWNGOOD_AGENT"] + "-" + os.environ["KNOWNGOOD_ENV"])
if not state.exists():
    sys.exit(0)
text = state.read_text()
if text == "fail":
    print("cluster unreachable", file=sys.stderr)
    sys.exit(5)
print(text)
"""


def test_command_reports_what_runs_with_current_command(tmp_path: Path) -> None:
    (tmp_path / "current.py").write_text(CURRENT)
    config = {
        "type": "command",
        "command": [sys.executable, "deploy.py"],
        "current_command": [sys.executable, "current.py"],
    }
    target = make_target(config, tmp_path)
    state = tmp_path / "runs-bot-production"
    nothing = target.running("bot", "production")
    assert nothing.known and nothing.content_hash is None and "printed nothing" in nothing.how
    state.write_text("ab" * 32 + "\n")
    seen = target.running("bot", "production")
    assert seen.known and seen.content_hash == "ab" * 32
    state.write_text("v1.2.0 is running")
    odd = target.running("bot", "production")
    assert not odd.known and "not one content hash" in odd.how
    state.write_text("fail")
    failed = target.running("bot", "production")
    assert not failed.known and "exited 5" in failed.how and "cluster unreachable" in failed.how
    plain = make_target({"type": "command", "command": ["./deploy.sh"]}, tmp_path)
    unknown = plain.running("bot", "production")
    assert not unknown.known and "current_command" in unknown.how


def test_http_reports_what_runs_with_current_url(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = receiver.url.replace("/deploy", "/current")
    config = {
        "type": "http",
        "url": receiver.url,
        "secret_env": "KG_DEPLOY_SECRET",
        "current_url": current,
    }
    target = make_target(config, Path.cwd())
    receiver.runs[("bot", "production")] = "cd" * 32
    receiver.runs[("bot", "staging")] = None
    seen = target.running("bot", "production")
    assert seen.known and seen.content_hash == "cd" * 32 and seen.how == current
    headers, path = receiver.requests[-1]
    assert path == b"/current?agent=bot&env=production"
    assert headers["X-Knowngood-Agent"] == "bot" and headers["X-Knowngood-Env"] == "production"
    empty = target.running("bot", "staging")
    assert empty.known and empty.content_hash is None
    assert not target.running("bot", "dev").known  # not JSON
    receiver.get_status = 500
    assert "answered 500" in target.running("bot", "production").how
    monkeypatch.setenv("KG_DEPLOY_SECRET", "the-wrong-secret")
    receiver.get_status = 200
    refused = target.running("bot", "production")
    assert not refused.known and "answered 403" in refused.how
    assert "the-wrong-secret" not in refused.how
    monkeypatch.delenv("KG_DEPLOY_SECRET")
    assert "is not set" in target.running("bot", "production").how
    plain = http_target(receiver)
    assert not plain.running("bot", "production").known
