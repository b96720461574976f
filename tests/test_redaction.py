"""A provider that echoes the key it received: the key must appear nowhere knowngood writes.

Real processes (``python -m pipeline``), real git with a bare remote, real HTTP to loopback
model servers (FakeProvider) and a loopback GitHub (FakeGitHub). The fake models answer with
the key they were sent -- raw, inside a JSON string, and in a tool call's arguments -- and with
the GitHub token. Then ``eval --record`` (text, with JSON, JUnit and markdown files), a warm
``eval --format json`` and ``gate --format github --comment`` (step summary, outputs) run, and
every byte they left behind is searched: files under the test's folder (reports, the cache, both
repositories), every object of the bare remote and of the clone, ``git log -p --all``, the
comments and requests GitHub received, stdout and stderr. Zero hits.
"""

from __future__ import annotations

import html
import json
import os
import random
import string
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from fakegithub import FakeGitHub
from fakeproviders import FakeProvider, Reply, ToolCallReply, last_user_text
from gitutil import clone, commit_all, git, make_remote
from repoutil import write_repo

from pipeline import redaction

ROOT = Path(__file__).resolve().parent.parent
PR = 7

# Assembled at run time: no key-shaped literal is committed here.
_rng = random.Random(8)
OPENAI_KEY = (
    "sk-" + "live-" + "".join(_rng.choice(string.ascii_letters + string.digits) for _ in range(40))
)
# Short, and made of the characters JSON, XML, markdown and URLs escape.
ACME_KEY = 'q"\\<|&'
GH_TOKEN = "ghs_" + "".join(_rng.choice(string.ascii_letters + string.digits) for _ in range(36))

SUITE = """\
agent: shop
vars: {customer: Ann}
providers: [openai, acme]
cases:
  - id: hello
    input: Hi
    expect:
      - icontains: acme
  - id: exact
    input: Say no
    expect:
      - equals: "no"
  - id: tool
    input: Where is A1?
    expect:
      - tool_call: {name: lookup_order, arguments: {order_id: A1}}
"""


def files(openai: FakeProvider, acme: FakeProvider) -> dict[str, str | None]:
    return {
        "knowngood.yaml": (
            "version: 1\nproviders:\n"
            f"  openai: {{model: openai/gpt-4o-mini, api_base: '{openai.openai_base}',"
            " api_key_env: OPENAI_API_KEY}\n"
            f"  acme: {{model: openai/acme-1, api_base: '{acme.openai_base}', api_key_env: ACME_CRED}}\n"
            "eval:\n  retries: 0\n"
        ),
        "agents/shop/agent.yaml": (
            "name: shop\ndescription: The shop.\nmodel:\n  provider: openai\n  fallbacks: [acme]\n"
            "prompt:\n  system: prompts/system.md\n  vars: {company: Acme}\n"
            "tools: [tools/lookup.json]\nevals:\n  pull_request: [pr]\n"
        ),
        "agents/shop/prompts/system.md": "You work for {{ company }}. You talk to {{ customer }}.\n",
        "agents/shop/tools/lookup.json": json.dumps(
            {
                "name": "lookup_order",
                "description": "Look up an order by its id.",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}, "note": {"type": "string"}},
                    "required": ["order_id"],
                },
            }
        ),
        "evals/shop/pr.yaml": SUITE,
        ".gitignore": ".knowngood/\n",
    }


def echoing(get: Any) -> Any:
    """A model that tells everyone the key it was sent (and the GitHub token)."""

    def responder(wire: str, body: dict[str, Any]) -> Reply:
        key = get().last.headers.get("authorization", "").removeprefix("Bearer ")
        leak = f"key {key} json {json.dumps({'key': key})} gh {GH_TOKEN}"
        if "Where is" in last_user_text(wire, body):
            note = json.dumps({"key": key, "token": GH_TOKEN})
            return Reply(
                text=leak,
                tool_calls=[ToolCallReply("lookup_order", {"order_id": "A1", "note": note})],
            )
        return Reply(text=f"Hello from Acme! {leak}")

    return responder


@pytest.fixture
def providers() -> Iterator[tuple[FakeProvider, FakeProvider]]:
    servers: dict[str, FakeProvider] = {}
    with (
        FakeProvider(responder=echoing(lambda: servers["openai"])) as openai,
        FakeProvider(responder=echoing(lambda: servers["acme"])) as acme,
    ):
        servers.update(openai=openai, acme=acme)
        yield openai, acme


def forms(secret: str) -> set[str]:
    """The ways a secret can be spelled in a file: raw, JSON-escaped (once, twice), XML, URL."""
    once = json.dumps(secret)[1:-1]
    xml = secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {
        secret,
        once,
        json.dumps(once)[1:-1],
        xml,
        xml.replace('"', "&quot;"),
        urllib.parse.quote(secret, safe=""),
        secret.replace("|", "\\|"),
    }


def hits(haystacks: dict[str, bytes]) -> list[str]:
    found = []
    for secret in (OPENAI_KEY, ACME_KEY, GH_TOKEN):
        for form in forms(secret):
            needle = form.encode()
            found += [f"{where}: {form!r}" for where, data in haystacks.items() if needle in data]
    return found


def test_a_key_the_model_echoes_is_written_and_printed_nowhere(
    tmp_path: Path, providers: tuple[FakeProvider, FakeProvider]
) -> None:
    openai, acme = providers
    remote = make_remote(tmp_path)
    repo = clone(remote, tmp_path / "work")
    write_repo(repo, files(openai, acme))
    commit_all(repo, "agents")
    git(repo, "push", "-q", "origin", "main")
    out = tmp_path / "out"
    out.mkdir()
    # CI gives every step the workflow's token
    env = {
        **os.environ,
        "OPENAI_API_KEY": OPENAI_KEY,
        "ACME_CRED": ACME_KEY,
        "GITHUB_TOKEN": GH_TOKEN,
    }
    captured: dict[str, bytes] = {}

    def knowngood(name: str, *args: str, extra: dict[str, str] | None = None) -> int:
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", *args, "--repo", str(repo)],
            cwd=repo,
            env={**env, **(extra or {})},
            capture_output=True,
            timeout=300,
            check=False,
        )
        captured[f"{name} stdout"] = proc.stdout
        captured[f"{name} stderr"] = proc.stderr
        assert proc.returncode in (0, 1), proc.stderr.decode()
        assert b"does not validate" not in proc.stderr, proc.stderr.decode()
        return proc.returncode

    # main: the results recorded and pushed, the text report, JSON, JUnit and markdown files
    knowngood("eval", "eval", "--record", "-v", "--output", str(out / "eval.json"),
              "--junit", str(out / "eval.xml"), "--markdown", str(out / "eval.md"))  # fmt: skip
    # the same from the cache, as JSON on stdout
    knowngood("eval json", "eval", "--format", "json", "--output", str(out / "eval2.json"))
    # a pull request: the gate with every report, the step summary and a PR comment
    git(repo, "checkout", "-q", "-b", "feature")
    prompt = repo / "agents/shop/prompts/system.md"
    prompt.write_text(prompt.read_text() + "Be brief.\n")
    commit_all(repo, "brief")
    with FakeGitHub(token=GH_TOKEN) as gh:
        gh.add_pull(PR)
        extra = {
            **gh.env(),
            "GITHUB_ACTIONS": "true",
            "GITHUB_STEP_SUMMARY": str(out / "summary.md"),
            "GITHUB_OUTPUT": str(out / "output.txt"),
        }
        (out / "output.txt").touch()
        knowngood("gate", "gate", "--base", "main", "--format", "github", "--comment",
                  "--pr", str(PR), "--output", str(out / "gate.json"), "--junit",
                  str(out / "gate.xml"), "--markdown", str(out / "gate.md"), extra=extra)  # fmt: skip
        comments = [c["body"] for c in gh.comments.get(PR, [])]
        github_requests = [r.raw for r in gh.requests]

    # The test means something: the models were sent the keys and echoed them ...
    sent = {r.headers.get("authorization") for s in providers for r in s.requests}
    assert sent == {f"Bearer {OPENAI_KEY}", f"Bearer {ACME_KEY}"}
    results = json.loads((out / "eval.json").read_text())
    texts = [run["text"] for case in results["cases"] for run in case["runs"]]
    assert texts and all("[REDACTED:" in t for t in texts), texts
    assert "[REDACTED:ACME_CRED]" in (out / "eval.xml").read_text()
    assert comments and "[REDACTED:" in comments[0]
    records = git(remote, "ls-tree", "-r", "--name-only", "knowngood/records")
    assert records.startswith("results/")
    assert "warning" in captured["eval stderr"].decode()  # the redaction is reported

    # ... and nothing anywhere holds them.
    haystacks = dict(captured)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            haystacks[str(path.relative_to(tmp_path))] = path.read_bytes()
    for where in (remote, repo):
        haystacks[f"{where.name}: git log -p --all"] = subprocess.run(
            ["git", "log", "-p", "--all"], cwd=where, capture_output=True, check=True
        ).stdout
        haystacks[f"{where.name}: every object"] = subprocess.run(
            ["git", "cat-file", "--batch-all-objects", "--batch"],
            cwd=where,
            capture_output=True,
            check=True,
        ).stdout
    haystacks.update({f"PR comment {i}": c.encode() for i, c in enumerate(comments)})
    haystacks.update({f"GitHub request {i}": r for i, r in enumerate(github_requests)})
    assert (out / "summary.md").stat().st_size > 0
    assert hits(haystacks) == []


# -- the redactor on its own ----------------------------------------------------------------------


@pytest.fixture
def fresh() -> Iterator[None]:
    redaction.forget()
    yield
    redaction.forget()


@pytest.mark.parametrize(
    "spell",
    [
        pytest.param(lambda s: s, id="raw"),
        pytest.param(lambda s: json.dumps(s), id="json"),
        pytest.param(lambda s: json.dumps(s, ensure_ascii=False), id="json-utf8"),
        pytest.param(lambda s: json.dumps(json.dumps({"k": s})), id="json-in-json"),
        pytest.param(lambda s: json.dumps({"a": [json.dumps({"k": s})]}, indent=2), id="nested"),
        pytest.param(lambda s: ET.tostring(ET.Element("x", m=s)).decode(), id="xml-attribute"),
        pytest.param(lambda s: f"<x>{html.escape(s, quote=False)}</x>", id="xml-text"),
        pytest.param(lambda s: html.escape(s), id="html"),
        pytest.param(lambda s: urllib.parse.quote(s, safe=""), id="url"),
        pytest.param(lambda s: urllib.parse.urlencode({"q": s}), id="form"),
        pytest.param(lambda s: "| " + s.replace("|", "\\|") + " |", id="markdown-table"),
        pytest.param(lambda s: repr({"k": s}), id="python-repr"),
        pytest.param(lambda s: "::error::" + s.replace("%", "%25"), id="workflow-command"),
    ],
)
@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("Zq7" + "x9W", id="six-characters"),
        pytest.param('q"\\<|&', id="escaped-everywhere"),
        pytest.param("k€y-" + "ünï-cödé", id="non-ascii"),
        pytest.param("sk-" + "a%b:c,d e/f+g", id="url-and-command-characters"),
    ],
)
def test_every_spelling_of_a_secret_is_redacted(
    fresh: None, monkeypatch: pytest.MonkeyPatch, secret: str, spell: Any
) -> None:
    monkeypatch.setenv("VENDOR_CRED", secret)  # a name that does not look secret ...
    redaction.declare("VENDOR_CRED")  # ... but knowngood.yaml says it holds a key
    text = f"before {spell(secret)} after"
    redacted = redaction.redact(text)
    assert "[REDACTED:VENDOR_CRED]" in redacted
    assert redacted.startswith("before ") and redacted.endswith(" after")
    for form in forms(secret) | {spell(secret)}:
        assert form not in redacted
    assert redaction.redact_bytes(text.encode()) == redacted.encode()
    assert redaction.redactions()["VENDOR_CRED"] >= 1


def test_short_values_and_ordinary_variables_are_left_alone(
    fresh: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHORT_API_KEY", "abcde")  # 5 characters: protects nothing
    monkeypatch.setenv("EDITOR_THEME", "solarized-dark")  # not a secret's name, not declared
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false-ish")
    monkeypatch.setenv("SSH_KEY_PATH", "/home/me/.ssh/id_ed25519")
    text = "abcde solarized-dark false-ish /home/me/.ssh/id_ed25519"
    assert redaction.redact(text) == text
    assert redaction.redactions() == {}


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("OPENAI_API_KEY", True),
        ("ANTHROPIC_API_KEY", True),
        ("GITHUB_TOKEN", True),
        ("GH_TOKEN", True),
        ("ACTIONS_RUNTIME_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("AWS_SESSION_TOKEN", True),
        ("DB_PASSWORD", True),
        ("STRIPE_KEY", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("MY_PAT", True),
        ("HOME", False),
        ("PATH", False),
        ("MAX_TOKENS", False),
        ("TOKENIZERS_PARALLELISM", False),
        ("SSH_KEY_PATH", False),
        ("KEYBOARD", False),
        ("AWS_ACCESS_KEY_ID", False),
        ("API_KEY_ENV", False),
    ],
)
def test_which_variables_hold_secrets(name: str, secret: bool) -> None:
    assert redaction.looks_secret(name) is secret


def test_the_settings_declare_their_key_variables(
    fresh: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.repo import Settings

    monkeypatch.setenv("MYLAB_CRED", "lab-" + "s3cr3t-value")
    monkeypatch.setenv("HOOK_AT", "https://hooks.example.com/" + "T0/B0/xyz")
    monkeypatch.setenv("SIGNER", "deploy-" + "signing-secret")
    monkeypatch.setenv("SERVE_AT", "serve-" + "client-key")
    text = (
        "lab-s3cr3t-value https://hooks.example.com/T0/B0/xyz deploy-signing-secret "
        "serve-client-key"
    )
    assert redaction.redact(text) == text
    Settings.from_data(
        {
            "version": 1,
            "providers": {"lab": {"model": "openai/x", "api_key_env": "MYLAB_CRED"}},
            "deploy": {"target": {"type": "http", "url": "https://x", "secret_env": "SIGNER"}},
            "revert": {"notify_webhook_env": "HOOK_AT"},
            "runtime": {"api_key_env": "SERVE_AT"},
        }
    )
    assert redaction.redact(text) == (
        "[REDACTED:MYLAB_CRED] [REDACTED:HOOK_AT] [REDACTED:SIGNER] [REDACTED:SERVE_AT]"
    )


def test_a_token_handed_over_directly_is_remembered(fresh: None) -> None:
    from pipeline.github._http import Transport

    token = "ghp_" + "R" * 36
    Transport(token)
    assert redaction.redact(f"token={token}") == "token=[REDACTED:GITHUB_TOKEN]"


def test_printing_goes_through_the_redactor(
    fresh: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import click

    secret = "sk-" + "printed-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with redaction.redacting_stdio():
        click.echo(f"out {secret}")
        click.echo(click.style(f"err {secret}", fg="red"), err=True)
        print(f"print {secret}", file=sys.stderr)
        sys.stdout.write(json.dumps({"k": secret}) + "\n")
    out, err = capsys.readouterr()
    assert secret not in out + err
    assert out == 'out [REDACTED:OPENAI_API_KEY]\n{"k": "[REDACTED:OPENAI_API_KEY]"}\n'
    assert "err [REDACTED:OPENAI_API_KEY]" in err and "print [REDACTED:OPENAI_API_KEY]" in err
    assert not isinstance(sys.stdout, redaction.RedactingStream)  # restored


def test_the_cache_stores_an_answer_redacted(
    fresh: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.evals.cache import Cache

    secret = "sk-" + "cached-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    cache = Cache(tmp_path)
    key = "a" * 64
    cache.put(key, {"text": f"the key is {secret}", "args": json.dumps({"k": secret})})
    assert cache.pack is not None
    assert secret.encode() not in cache.pack.read_bytes()
    assert cache.get(key) == {
        "text": "the key is [REDACTED:OPENAI_API_KEY]",
        "args": '{"k": "[REDACTED:OPENAI_API_KEY]"}',
    }


def test_nothing_handed_to_git_keeps_a_secret(
    fresh: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitutil import init_repo

    from pipeline.git import Git

    secret = "sk-" + "committed-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    repo = Git(init_repo(tmp_path / "r"))
    blob = repo.run("hash-object", "-w", "--stdin", input=f'{{"text": "{secret}"}}').strip()
    assert repo.run("cat-file", "-p", blob) == '{"text": "[REDACTED:OPENAI_API_KEY]"}'
