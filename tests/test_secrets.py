"""Secrets in agent repositories: every kind found where it starts, never echoed, no false alarms."""

from __future__ import annotations

import random
import string
import time

import pytest

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
        f"# setup\nexport OPENAI_API_KEY={OPENAI_PROJECT}\n",
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
        f"[default]\naws_secret_access_key = {AWS_SECRET}\n",
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
        'database:\n  password: "Xk9mP2vL7qR4wZ3t"\n',
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
