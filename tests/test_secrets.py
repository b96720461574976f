"""Secrets in agent repositories: every kind found where it starts, never echoed, no false alarms."""

from __future__ import annotations

import base64
import json
import random
import re
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bfclutil import SKIP_WITHOUT, bfcl_tools
from repoutil import BASE, run_validate, write_repo

from pipeline.validate import secretfiles
from pipeline.validate.secrets import ALLOW_MARKER, scan_text

# Tokens are assembled at run time so that no real-looking key is committed in this file.
_rng = random.Random(20260101)


def rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


OPENAI = "sk-" + rand(48)
OPENAI_PROJECT = "sk-" + "proj-" + rand(120, string.ascii_letters + string.digits + "_-")
ANTHROPIC = "sk-" + "ant-api03-" + rand(93, string.ascii_letters + string.digits + "_-") + "AA"
GOOGLE = "AI" + "za" + rand(35, string.ascii_letters + string.digits + "_-")
AWS_ID = "AK" + "IA" + rand(16, string.ascii_uppercase + string.digits)
AWS_SECRET = rand(40, string.ascii_letters + string.digits + "/+")
GITHUB = "gh" + "p_" + rand(36)
GITHUB_PAT = "github" + "_pat_" + rand(22) + "_" + rand(59)
SLACK = "xo" + "xb-" + rand(12, string.digits) + "-" + rand(13, string.digits) + "-" + rand(24)
WEBHOOK = (
    "https://hooks.slack.com/services/T"
    + rand(10, string.ascii_uppercase)
    + "/B"
    + rand(10)
    + "/"
    + rand(24)
)
PRIVATE = (
    "-----BEGIN "
    + "RSA PRIVATE KEY-----\n"
    + rand(64, string.ascii_letters + "+/")
    + "\n-----END RSA PRIVATE KEY-----"
)
GENERIC = rand(32, "0123456789abcdef")

# (id, text, rule, line, column, message fragment, the secret that must not be echoed)
POSITIVE = [
    (
        "openai-yaml",
        f"providers:\n  openai:\n    api_key: {OPENAI}\n",
        "secret.openai-key",
        3,
        14,
        "an OpenAI API key (51 characters)",
        OPENAI,
    ),
    (
        "openai-project-env",
        f"# setup\nexport OPENAI_API_KEY={OPENAI_PROJECT}\n",  # knowngood: allow-secret
        "secret.openai-key",
        2,
        23,
        "OpenAI API key",
        OPENAI_PROJECT,
    ),
    (
        "anthropic-json",
        f'{{\n  "anthropic": "{ANTHROPIC}"\n}}',
        "secret.anthropic-key",
        2,
        17,
        "an Anthropic API key (108 characters)",
        ANTHROPIC,
    ),
    (
        "google-markdown",
        f"Use the key `{GOOGLE}` for maps.\n",
        "secret.google-api-key",
        1,
        14,
        "a Google API key (39 characters)",
        GOOGLE,
    ),
    (
        "aws-id",
        f"aws_access_key_id = {AWS_ID}\n",
        "secret.aws-access-key-id",
        1,
        21,
        "AWS access key id",
        AWS_ID,
    ),
    (
        "aws-secret",
        f"[default]\naws_secret_access_key = {AWS_SECRET}\n",  # knowngood: allow-secret
        "secret.aws-secret-access-key",
        2,
        25,
        "AWS secret access key (40 characters)",
        AWS_SECRET,
    ),
    (
        "github",
        f"token: {GITHUB}\n",
        "secret.github-token",
        1,
        8,
        "a GitHub token (40 characters)",
        GITHUB,
    ),
    ("github-pat", f"gh: {GITHUB_PAT}\n", "secret.github-token", 1, 5, "GitHub token", GITHUB_PAT),
    (
        "slack-token",
        f"notify:\n  slack: {SLACK}\n",
        "secret.slack-token",
        2,
        10,
        "a Slack token",
        SLACK,
    ),
    (
        "slack-webhook",
        f"webhook: {WEBHOOK}\n",
        "secret.slack-webhook",
        1,
        10,
        "Slack webhook URL",
        WEBHOOK,
    ),
    (
        "private-key",
        f"key: |\n  {PRIVATE}\n",
        "secret.private-key",
        2,
        3,
        "a private key block",
        PRIVATE[40:80],
    ),
    (
        "private-key-json",
        '{"pem": "' + PRIVATE.replace("\n", "\\n") + '"}',
        "secret.private-key",
        1,
        10,
        "private key",
        PRIVATE[40:80],
    ),
    (
        "generic-password",
        'database:\n  password: "Xk9mP2vL7qR4wZ3t"\n',  # knowngood: allow-secret
        "secret.generic",
        2,
        14,
        "assigned to 'password'",
        "Xk9mP2vL7qR4wZ3t",
    ),
    (
        "generic-token-camel",
        f'{{"authToken": "{GENERIC}"}}',
        "secret.generic",
        1,
        16,
        "a high-entropy value (32 characters)",
        GENERIC,
    ),
    (
        "generic-holds-known-kind",
        f"my_key: {GOOGLE}\n",
        "secret.google-api-key",
        1,
        9,
        "Google API key",
        GOOGLE,
    ),
]


@pytest.mark.parametrize(
    ("case", "text", "rule", "line", "column", "fragment", "secret"),
    POSITIVE,
    ids=[c[0] for c in POSITIVE],
)
def test_finds_secret(
    case: str, text: str, rule: str, line: int, column: int, fragment: str, secret: str
) -> None:
    found = scan_text("agents/a/agent.yaml", text)
    assert [(f.rule, f.line, f.column) for f in found] == [(rule, line, column)]
    finding = found[0]
    assert finding.severity == "error" and finding.path == "agents/a/agent.yaml"
    assert fragment in finding.message
    assert secret not in finding.render() and secret[:12] not in finding.render()
    assert "environment variable" in (finding.hint or "") and "rotate" in (finding.hint or "")


NEGATIVE = [
    ("env-reference", "api_key: ${OPENAI_API_KEY}\n"),
    ("env-var-name", "providers:\n  mylab:\n    api_key_env: OPENAI_API_KEY\n"),
    ("env-var-name-secret", "deploy:\n  secret_env: KNOWNGOOD_DEPLOY_SECRET\n"),
    ("placeholder-angle", 'token: "<your-key>"\n'),
    ("placeholder-changeme", "password: changeme\n"),
    ("placeholder-x", "api_key: sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"),
    ("placeholder-dots", "OPENAI_API_KEY=sk-...\n"),
    ("aws-documented-example", "aws_access_key_id: AKIAIOSFODNN7EXAMPLE\n"),
    ("max-tokens", "params: {temperature: 0, max_tokens: 200}\n"),
    ("tokenizer", "tokenizer: HuggingFaceTB/SmolLM2-135M-Instruct\n"),
    ("identifier", "primary_key: customer_order_id\n"),
    ("monkey", 'monkey: "Xk9mP2vL7qR4wZ3t"\n'),
    ("inside-word", "task-" + rand(40) + "\n"),
    ("pem-header-in-docs", "Keys start with `-----BEGIN " + "PRIVATE KEY-----` and end ...\n"),
    ("allowed", f"fixture_token: {OPENAI}  # {ALLOW_MARKER}\n"),
    # code, now that every tracked file is scanned
    ("code-subscript", "    key = os.environ[KEY_ENV]\n"),
    ("code-call", "        token = match.group(1)\n"),
    ("code-regex", 'AZURE = r"AccountKey=[a-zA-Z0-9+/=]{88}"\n'),
    ("url-template-field", "registry: https://deploy:{password}@registry.acme.dev/v2\n"),
    # how a tool's description says what a URL looks like (a real one, from the BFCL corpus)
    (
        "url-format-example",
        "proxy: Optional HTTP proxy, in the format 'http://user:password@host:port'.\n",
    ),
    ("url-format-example-short", "Use https://username:pass@your.registry/ with your login.\n"),
    (
        "prose",
        "The secret of a good prompt is a clear key result; pass the token count in the header.\n",
    ),
]


@pytest.mark.parametrize(("case", "text"), NEGATIVE, ids=[c[0] for c in NEGATIVE])
def test_no_false_alarm(case: str, text: str) -> None:
    assert scan_text("README.md", text) == []


def test_many_secrets_in_order() -> None:
    text = "\n".join([f"a: {OPENAI}", "b: plain", f"c: {GITHUB}", f"d: {GOOGLE}"])
    assert [(f.line, f.rule) for f in scan_text("x.yaml", text)] == [
        (1, "secret.openai-key"),
        (3, "secret.github-token"),
        (4, "secret.google-api-key"),
    ]


def test_eight_megabytes_in_one_pass() -> None:
    """Not a benchmark (CI machines vary): a guard against a pathological regex, with wide margins."""
    block = "".join(
        f"tool_{i}:\n  description: Look up order {i} and return its status.\n  max_tokens: 200\n"
        for i in range(2000)
    )
    text = (block * (8_000_000 // len(block) + 1))[:8_000_000] + f"\nleak: {OPENAI}\n"
    start = time.perf_counter()
    found = scan_text("big.yaml", text)
    elapsed = time.perf_counter() - start
    assert [f.rule for f in found] == ["secret.openai-key"]
    assert elapsed < 20, f"{elapsed:.1f}s for 8 MB"


# -- every tracked file, detect-secrets' plugins, disguised keys ------------------------------------


def b64(text: str, *, urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(text.encode()).decode().rstrip("=" if urlsafe else "")


JWT = (
    b64('{"alg":"HS256","typ":"JWT"}', urlsafe=True)
    + "."
    + b64('{"sub":"1234567890","name":"Ann"}', urlsafe=True)
    + "."
    + rand(43, string.ascii_letters + string.digits + "_-")
)
HEX = "0123456789abcdef"
LOWER = string.ascii_lowercase + string.digits
# (plugin class, text, the secret, rule) -- one example per detect-secrets plugin knowngood uses
PLUGIN_EXAMPLES = [
    ("AWSKeyDetector", "id: " + "AS" + "IA" + rand(16, string.ascii_uppercase) + "\n", "", "secret.aws-access-key-id"),
    ("AzureStorageKeyDetector", "conn: DefaultEndpointsProtocol=https;AccountKey=" + rand(86) + "==\n", "", "secret.azure-storage-key"),
    ("ArtifactoryDetector", "artifactory: AKC" + "p" + rand(60) + "\n", "", "secret.artifactory"),
    ("BasicAuthDetector", "url: https://deploy:" + rand(16) + "@registry.acme.dev/v2\n", "", "secret.url-password"),
    ("CloudantDetector", "cloudant_password: " + rand(64, HEX) + "\n", "", "secret.cloudant"),
    ("DiscordBotTokenDetector", "bot: M" + rand(23) + "." + rand(6) + "." + rand(27) + "\n", "", "secret.discord-token"),
    ("GitHubTokenDetector", "gh: " + "gh" + "o_" + rand(36) + "\n", "", "secret.github-token"),
    ("GitLabTokenDetector", "gitlab: " + "gl" + "pat-" + rand(20) + "\n", "", "secret.gitlab-token"),
    ("IbmCloudIamDetector", "ibm_cloud_iam_key: " + rand(44) + "\n", "", "secret.ibm-cloud-key"),
    ("IbmCosHmacDetector", "cos_hmac_secret_access_key: " + rand(48, HEX) + "\n", "", "secret.ibm-cos-hmac"),
    ("JwtTokenDetector", "session: " + JWT + "\n", "", "secret.jwt"),
    ("MailchimpDetector", "mailchimp: " + rand(32, LOWER) + "-us12\n", "", "secret.mailchimp-key"),
    ("NpmDetector", "//registry.npmjs.org/:_authToken=" + "npm_" + rand(36) + "\n", "", "secret.npm-token"),
    ("OpenAIDetector", "legacy: " + "sk-" + rand(20) + "T3Blbk" + "FJ" + rand(20) + "\n", "", "secret.openai-key"),
    ("PrivateKeyDetector", "---- BEGIN SSH2 " + "ENCRYPTED PRIVATE KEY ----\n" + rand(64, string.ascii_letters + "+/") + "\n", "", "secret.private-key"),
    ("PypiTokenDetector", "pypi: " + "pypi-" + "AgEIcHlwaS5vcmc" + rand(80) + "\n", "", "secret.pypi-token"),
    ("SendGridDetector", "sendgrid: SG." + rand(22) + "." + rand(43) + "\n", "", "secret.sendgrid-key"),
    ("SlackDetector", "slack: " + "xo" + "xp-" + rand(10, string.digits) + "-" + rand(12, LOWER) + "\n", "", "secret.slack-token"),
    ("SoftlayerDetector", "softlayer_api_key: " + rand(64, LOWER) + "\n", "", "secret.softlayer"),
    ("SquareOAuthDetector", "square: " + "sq0" + "csp-" + rand(43) + "\n", "", "secret.square-oauth"),
    ("StripeDetector", "stripe: " + "sk" + "_live_" + rand(24) + "\n", "", "secret.stripe-key"),
    ("TelegramBotTokenDetector", "bot: " + rand(9, string.digits) + ":" + rand(35) + "\n", "", "secret.telegram-token"),
    ("TwilioKeyDetector", "twilio: " + "SK" + rand(32, LOWER) + "\n", "", "secret.twilio-key"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("plugin", "text", "rule"),
    [(p, t, r) for p, t, _, r in PLUGIN_EXAMPLES],
    ids=[p for p, *_ in PLUGIN_EXAMPLES],
)
def test_detect_secrets_plugins_find_their_formats(plugin: str, text: str, rule: str) -> None:
    found = scan_text("notes.md", text)
    assert [f.rule for f in found] == [rule], found
    shown = found[0].render()
    assert not [t for t in re.findall(r"[A-Za-z0-9+/_-]{16,}", text) if t in shown]  # no echo
    first, rest = text.split("\n", 1)
    assert scan_text("notes.md", f"{first}  # {ALLOW_MARKER}\n{rest}") == []


def test_the_plugin_patterns_are_transcribed_for_re2_faithfully() -> None:
    """Every pattern of every plugin has its RE2 anchor, which matches wherever the plugin does."""
    import importlib

    import re2

    from pipeline.validate import detectors

    examples = (
        "\n".join(t for _, t, _, _ in PLUGIN_EXAMPLES)
        + "\n"
        + "\n".join(t for _, t, *_ in POSITIVE)
    )
    for module, name, _, _, anchors in detectors.PLUGINS:
        plugin = getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)
        assert len(anchors) == len(plugin.denylist), name
        for pattern, anchor in zip(plugin.denylist, anchors, strict=True):
            compiled = re2.compile(anchor)
            for line in examples.splitlines():
                if pattern.search(line):
                    assert compiled.search(line), (name, pattern.pattern, line)
    assert {p for p, *_ in PLUGIN_EXAMPLES} == {name for _, name, *_ in detectors.PLUGINS}


def test_a_repository_without_candidates_never_imports_detect_secrets(tmp_path: Path) -> None:
    root = write_repo(tmp_path, dict(BASE))
    (root / "README.md").write_text("# Agents\n\nSee https://example.com/docs for the API.\n")
    code = (
        "import sys; from pathlib import Path; from pipeline.validate import validate_repo;"
        f"r = validate_repo(Path({str(root)!r})); assert not r.errors, r.errors;"
        "print('detect_secrets' in sys.modules, 'litellm' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


def disguised() -> dict[str, tuple[str, str, str]]:
    """(text, rule, where the disguise starts) of keys hidden from a plain pattern match."""
    head, tail = OPENAI[:9], OPENAI[9:]
    config = json.dumps({"providers": {"openai": {"api_key": OPENAI}}})
    return {
        "jinja-tilde": (f"Use {{{{ '{head}' ~ '{tail}' }}}} to call.\n", "secret.openai-key", "'"),
        "jinja-set": (
            f'{{% set key = "{AWS_ID[:4]}" ~ "{AWS_ID[4:12]}" ~ "{AWS_ID[12:]}" %}}\n',
            "secret.aws-access-key-id",
            '"',
        ),
        "plus-in-code": (
            f'TOKEN = "{GITHUB[:10]}" + "{GITHUB[10:]}"\n',
            "secret.github-token",
            '"',
        ),
        "jinja-join": (f"{{{{ ['{head}', '{tail}'] | join }}}}\n", "secret.openai-key", "["),
        "base64": (f"OPENAI_B64={b64(OPENAI)}\n", "secret.openai-key", b64(OPENAI)),
        "base64-urlsafe": (
            f"token: {b64(GITHUB, urlsafe=True)}\n",
            "secret.github-token",
            b64(GITHUB, urlsafe=True),
        ),
        "base64-of-a-config": (
            f"data:\n  config.json: {b64(config)}\n",
            "secret.openai-key",
            b64(config),
        ),
    }


@pytest.mark.parametrize("case", list(disguised()))
def test_a_disguised_key_is_found_where_the_disguise_starts(case: str) -> None:
    text, rule, at = disguised()[case]
    found = scan_text("agents/a/prompts/system.md", text)
    assert [f.rule for f in found] == [rule], found
    how = "hidden as base64" if case.startswith("base64") else "split into string literals"
    assert how in found[0].message
    start = text.index(at)
    line = text.count("\n", 0, start) + 1
    assert (found[0].line, found[0].column) == (line, start - text.rfind("\n", 0, start))


NOT_DISGUISED = [
    ("sha256-hashes", "--hash=sha256:" + rand(64, HEX) + " \\\n    --hash=sha256:" + rand(64, HEX) + "\n"),
    ("identifiers", "disable_end_user_cost_tracking_for_every_call = True\n"),
    ("an-image", "![logo](data:image/png;base64," + base64.b64encode(bytes(range(256)) * 3).decode() + ")\n"),
    ("base64-prose", "greeting: " + b64("Hello, this is a perfectly harmless sentence.") + "\n"),
    ("joined-words", "{{ 'Hello, ' ~ customer ~ '!' }} {{ 'a' ~ 'b' }}\n"),
    ("python-concat", 'prefix = "sk-" + "ant-"\n'),
]  # fmt: skip


@pytest.mark.parametrize(("case", "text"), NOT_DISGUISED, ids=[c[0] for c in NOT_DISGUISED])
def test_no_false_alarm_from_the_disguise_rules(case: str, text: str) -> None:
    assert scan_text("README.md", text) == []


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_validate_scans_every_tracked_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue: a key in a committed .env, the README, scripts/*.sh or a workflow was missed."""
    root = write_repo(tmp_path / "repo", dict(BASE))
    stripe = "sk" + "_live_" + rand(24)
    files = {
        ".env": f"# local\nOPENAI_API_KEY={OPENAI}\n",
        "README.md": f"# Agents\n\nCall it with `{GITHUB}`.\n",
        "scripts/deploy.sh": f"#!/bin/sh\nset -e\nexport STRIPE={stripe}\n",
        ".github/workflows/ci.yml": f"on: push\njobs:\n  a:\n    env:\n      HOOK: {WEBHOOK}\n",
        "docs/keys.md": f"Encoded: {b64(ANTHROPIC)}\n",
        "agents/shop/prompts/footer.md": f"{{{{ '{AWS_ID[:4]}' ~ '{AWS_ID[4:]}' }}}}\n",
        ".gitignore": "ignored.txt\n",
        "ignored.txt": f"{OPENAI}\n",  # not tracked: never committed, not scanned
    }
    write_repo(root, files)
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0" + OPENAI.encode())  # binary: skipped
    (root / "big.csv").write_bytes(b"x\n" * (secretfiles.MAX_SCAN_BYTES // 2 + 1))
    git(root, "init", "-q")
    git(root, "add", "-A")
    (root / "untracked.txt").write_text(f"{OPENAI}\n")  # neither
    code, report = run_validate(root, capsys)
    found = {
        (f["path"], f["line"], f["rule"])
        for f in report["findings"]
        if f["rule"].startswith("secret")
    }
    assert found == {
        (".env", 2, "secret.openai-key"),
        ("README.md", 3, "secret.github-token"),
        ("scripts/deploy.sh", 3, "secret.stripe-key"),
        (".github/workflows/ci.yml", 5, "secret.slack-webhook"),
        ("docs/keys.md", 1, "secret.anthropic-key"),
        ("agents/shop/prompts/footer.md", 1, "secret.aws-access-key-id"),
        ("big.csv", None, "secret.not-scanned"),
    }
    assert code == 1
    rendered = json.dumps(report)
    for secret in (OPENAI, GITHUB, stripe, WEBHOOK, ANTHROPIC, AWS_ID):
        assert secret not in rendered


def test_outside_git_every_file_but_vcs_venvs_and_caches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_repo(tmp_path / "plain", dict(BASE))
    for rel in (
        ".venv/lib/site.py",
        "env/lib/x.py",
        "node_modules/a/index.js",
        ".knowngood/cache/x",
    ):
        write_repo(root, {rel: f"KEY = '{OPENAI}'\n"})
    (root / "env" / "pyvenv.cfg").write_text("home = /usr\n")  # a virtualenv by another name
    write_repo(root, {"notes/todo.txt": f"rotate {OPENAI}\n"})
    code, report = run_validate(root, capsys)
    assert [(f["path"], f["rule"]) for f in report["findings"]] == [
        ("notes/todo.txt", "secret.openai-key")
    ]
    assert code == 1


def test_only_a_format_example_login_in_a_url_is_not_a_secret() -> None:
    """``user:password@`` says what a URL looks like; any other password in a URL is one."""
    for text in (
        "db: postgresql://admin:password@db.internal/app\n",  # knowngood: allow-secret
        "proxy: http://user:Tr0ub4dor3x@proxy.internal:3128\n",  # knowngood: allow-secret
        "proxy: http://user:password1@proxy.internal:3128\n",  # knowngood: allow-secret
    ):
        assert [f.rule for f in scan_text("agents/a/tools/t.json", text)] == [
            "secret.url-password"
        ], text


@SKIP_WITHOUT
def test_no_false_alarm_in_thousands_of_real_tool_definitions() -> None:
    """The Berkeley Function Calling Leaderboard's tools are public documentation: no secret."""
    tools = bfcl_tools()
    assert len(tools) > 5000
    found = [
        (i, f.rule, f.message)
        for i, tool in enumerate(tools)
        for f in scan_text(f"agents/bfcl/tools/t{i}.json", json.dumps(tool, indent=2))
    ]
    assert found == []
