"""detect-secrets' plugins for the major key formats, in process, without its baseline machinery.

detect-secrets (Yelp, pinned in the lock) keeps one regex-based plugin per credential format:
AWS, Azure storage, Artifactory, basic auth in URLs, Cloudant, Discord, GitHub, GitLab, IBM
Cloud, JWT, Mailchimp, npm, OpenAI, private keys, PyPI, SendGrid, Slack, SoftLayer, Square,
Stripe, Telegram, Twilio. Its entropy and keyword plugins are not used: knowngood's own generic
rule (a random-looking value assigned to a ``*key*``/``*token*``/``*secret*`` name) does that job
with fewer false alarms.

Running the plugins' ~45 regexes over every file with ``re`` would take seconds on a large
repository (several start with a character class or a lookbehind, which ``re`` tries at every
position). So the plugins' patterns, transcribed for RE2 (google-re2, a dependency already), run
as one automaton over each file's UTF-8 bytes -- tens of milliseconds for 10 MB -- and only the
lines where one matches go through the plugins themselves (``plugin.analyze_string``, which also
applies e.g. the JWT plugin's validity check). detect-secrets is imported on the first such line
(~0.1 s: it pulls in ``requests``), so a repository without a candidate never pays for it.
``tests/test_secrets.py`` checks the transcription against every plugin: same number of patterns,
and each plugin's own test secrets found.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from typing import Any, Final

import re2  # type: ignore[import-untyped]

from pipeline.validate.secrets import ALLOW_MARKER, Hit, char_offset, placeholder

# (module under detect_secrets.plugins, class, rule, what it is, anchors: one per pattern of its
# denylist, in order). An anchor is the plugin's pattern in RE2 syntax, loosened where RE2 lacks
# a construct (lookarounds dropped, ``re.I`` as ``(?i:...)``): it matches wherever the pattern
# does. The rules and wording of formats knowngood's own rules know are the same as theirs.
_KEY: Final = r"(?:key|pwd|pw|password|pass|token)"
_IS: Final = r"[\"']?\]?[ ]*(?:=|:|:=|=>| +|::)[ ]*[\"']?"  # detect-secrets' assignment
PLUGINS: Final[tuple[tuple[str, str, str, str, tuple[str, ...]], ...]] = (
    (
        "aws",
        "AWSKeyDetector",
        "secret.aws-access-key",
        "an AWS access key",
        (
            r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}",
            r"(?i:aws.{0,20}?" + _KEY + r".{0,20}?['\"][0-9a-zA-Z/+]{40}['\"])",
        ),
    ),
    (
        "azure_storage_key",
        "AzureStorageKeyDetector",
        "secret.azure-storage-key",
        "an Azure storage account key",
        (r"AccountKey=[a-zA-Z0-9+/=]{88}",),
    ),
    (
        "artifactory",
        "ArtifactoryDetector",
        "secret.artifactory",
        "an Artifactory credential",
        (
            r"(?m:(?:\s|=|:|\"|^)AKC[a-zA-Z0-9]{10,}(?:\s|\"|$))",
            r"(?m:(?:\s|=|:|\"|^)AP[0-9ABCDEF][a-zA-Z0-9]{8,}(?:\s|\"|$))",
        ),
    ),
    (
        "basic_auth",
        "BasicAuthDetector",
        "secret.url-password",
        "a password in a URL",
        (r"://[^:/?#\[\]@!$&'()*+,;=\s]+:[^:/?#\[\]@!$&'()*+,;=\s]+@",),
    ),
    (
        "cloudant",
        "CloudantDetector",
        "secret.cloudant",
        "a Cloudant credential",
        (
            r"(?i:cl(?:oudant|ou)?[_-]?(?:api)?" + _KEY + _IS + r"[0-9a-f]{64})",
            r"(?i:cl(?:oudant|ou)?[_-]?(?:api)?" + _KEY + _IS + r"[a-z]{24})",
            r"(?i:https?://[\w-]+:[0-9a-f]{64}@[\w-]+\.cloudant\.com)",
            r"(?i:https?://[\w-]+:[a-z]{24}@[\w-]+\.cloudant\.com)",
        ),
    ),
    (
        "discord",
        "DiscordBotTokenDetector",
        "secret.discord-token",
        "a Discord bot token",
        (r"[MNO][a-zA-Z0-9_-]{23,25}\.[a-zA-Z0-9_-]{6}\.[a-zA-Z0-9_-]{27}",),
    ),
    (
        "github_token",
        "GitHubTokenDetector",
        "secret.github-token",
        "a GitHub token",
        (r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}",),
    ),
    (
        "gitlab_token",
        "GitLabTokenDetector",
        "secret.gitlab-token",
        "a GitLab token",
        (
            r"(?:glpat|gldt|glft|glsoat|glrt)-[A-Za-z0-9_-]{20,50}",
            r"GR1348941[A-Za-z0-9_-]{20,50}",
            r"glcbt-(?:[0-9a-fA-F]{2}_)?[A-Za-z0-9_-]{20,50}",
            r"glimt-[A-Za-z0-9_-]{25}",
            r"glptt-[A-Za-z0-9_-]{40}",
            r"glagent-[A-Za-z0-9_-]{50,}",  # RE2 repeats at most 1000 times
            r"gloas-[A-Za-z0-9_-]{64}",
        ),
    ),
    (
        "ibm_cloud_iam",
        "IbmCloudIamDetector",
        "secret.ibm-cloud-key",
        "an IBM Cloud IAM key",
        (r"(?i:(?:key|pwd|password|pass|token)" + _IS + r"[a-zA-Z0-9_-]{44})",),
    ),
    (
        "ibm_cos_hmac",
        "IbmCosHmacDetector",
        "secret.ibm-cos-hmac",
        "an IBM COS HMAC secret",
        (r"(?i:secret[-_]?(?:access)?[-_]?key" + _IS + r"[a-f0-9]{48})",),
    ),
    (
        "jwt",
        "JwtTokenDetector",
        "secret.jwt",
        "a JSON Web Token",
        (r"eyJ[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+",),
    ),
    (
        "mailchimp",
        "MailchimpDetector",
        "secret.mailchimp-key",
        "a Mailchimp API key",
        (r"[0-9a-z]{32}-us[0-9]{1,2}",),
    ),
    (
        "npm",
        "NpmDetector",
        "secret.npm-token",
        "an npm token",
        (r"//.+/:_authToken=\s*(?:npm_.+|[A-Fa-f0-9-]{36})",),
    ),
    (
        "openai",
        "OpenAIDetector",
        "secret.openai-key",
        "an OpenAI API key",
        (r"sk-[A-Za-z0-9_-]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}",),
    ),
    (
        "private_key",
        "PrivateKeyDetector",
        "secret.private-key",
        "a private key",
        (
            r"BEGIN DSA PRIVATE KEY",
            r"BEGIN EC PRIVATE KEY",
            r"BEGIN OPENSSH PRIVATE KEY",
            r"BEGIN PGP PRIVATE KEY BLOCK",
            r"BEGIN PRIVATE KEY",
            r"BEGIN RSA PRIVATE KEY",
            r"BEGIN SSH2 ENCRYPTED PRIVATE KEY",
            r"PuTTY-User-Key-File-2",
        ),
    ),
    (
        "pypi_token",
        "PypiTokenDetector",
        "secret.pypi-token",
        "a PyPI token",
        (
            r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{70,}",
            r"pypi-AgENdGVzdC5weXBpLm9yZw[A-Za-z0-9_-]{70,}",
        ),
    ),
    (
        "sendgrid",
        "SendGridDetector",
        "secret.sendgrid-key",
        "a SendGrid API key",
        (r"SG\.[a-zA-Z0-9_-]{22}\.[a-zA-Z0-9_-]{43}",),
    ),
    (
        "slack",
        "SlackDetector",
        "secret.slack-token",
        "a Slack token",
        (
            r"(?i:xox(?:a|b|p|o|s|r)-(?:[0-9]+-)+[a-z0-9]+)",
            r"(?i:https://hooks\.slack\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+)",
        ),
    ),
    (
        "softlayer",
        "SoftlayerDetector",
        "secret.softlayer",
        "a SoftLayer credential",
        (
            r"(?i:(?:softlayer|sl)[_-]?(?:api)?[_-]?(?:key|pwd|password|pass|token)"
            + _IS
            + r"[a-z0-9]{64})",
            r"(?i:(?:http|https)://api.softlayer.com/soap/(?:v3|v3.1)/[a-z0-9]{64})",
        ),
    ),
    (
        "square_oauth",
        "SquareOAuthDetector",
        "secret.square-oauth",
        "a Square OAuth secret",
        (r"sq0csp-[0-9A-Za-z\\\-_]{43}",),
    ),
    (
        "stripe",
        "StripeDetector",
        "secret.stripe-key",
        "a Stripe secret key",
        (r"(?:r|s)k_live_[0-9a-zA-Z]{24}",),
    ),
    (
        "telegram_token",
        "TelegramBotTokenDetector",
        "secret.telegram-token",
        "a Telegram bot token",
        (r"[0-9]{8,10}:[0-9A-Za-z_-]{35}",),
    ),
    (
        "twilio",
        "TwilioKeyDetector",
        "secret.twilio-key",
        "a Twilio API key",
        (r"AC[a-z0-9]{32}", r"SK[a-z0-9]{32}"),
    ),
)
# RE2 runs the alternation as one automaton over the file's UTF-8 bytes: ~20 ms for 10 MB,
# where ``re`` takes seconds (it tries every alternative at every position, and the
# case-insensitive ones without a fast prefix).
_ANCHORS: Final = re2.compile(
    "|".join(f"(?:{a})" for *_, anchors in PLUGINS for a in anchors).encode()
)
_LONG_LINE: Final = 16384  # past this, plugins see a window around the anchor, not the line
_WINDOW: Final = (1024, 8192)

_plugins: list[tuple[Any, str, str]] | None = None


def plugins() -> list[tuple[Any, str, str]]:
    """(plugin instance, rule, what it finds); imports detect-secrets on first use."""
    global _plugins
    if _plugins is None:
        loaded = []
        for module, name, rule, what, _ in PLUGINS:
            cls = getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)
            loaded.append((cls(), rule, what))
        _plugins = loaded
    return _plugins


def find(text: str, data: bytes) -> list[Hit]:
    """Every credential a detect-secrets plugin finds in ``text`` (``data``: its UTF-8)."""
    hits: list[Hit] = []
    done: set[int] = set()
    for start, end in _candidate_regions(data):
        if start in done:
            continue
        done.add(start)
        segment = data[start:end].decode("utf-8", "surrogatepass")
        if ALLOW_MARKER in segment:  # reported nowhere: no need to import detect-secrets for it
            continue
        after = data[end : end + 400].decode("utf-8", "replace")
        found = [h for p in plugins() for h in _confirm(*p, segment, after)]
        if found:
            base = char_offset(text, data, start)
            hits += [
                Hit(h.start + base, h.end + base, h.rule, h.message, h.priority) for h in found
            ]
    return hits


def _candidate_regions(data: bytes) -> Iterator[tuple[int, int]]:
    """Byte ranges (a line, or a window of a very long one) where a plugin may match."""
    for match in _ANCHORS.finditer(data):
        pos = match.start()
        start = data.rfind(b"\n", 0, pos) + 1
        end = data.find(b"\n", pos)
        if end < 0:
            end = len(data)
        if end - start > _LONG_LINE:
            start = max(start, pos - _WINDOW[0])
            end = min(end, match.end() + _WINDOW[1])
            while start < pos and data[start] & 0xC0 == 0x80:  # not inside a character
                start += 1
            while end < len(data) and data[end] & 0xC0 == 0x80:
                end += 1
        yield start, end


def _confirm(plugin: Any, rule: str, what: str, segment: str, after: str) -> Iterator[Hit]:
    """The plugin's findings in ``segment`` (a line), located in it."""
    values = set(plugin.analyze_string(segment))
    if not values:
        return
    for regex in plugin.denylist:
        for match in regex.finditer(segment):
            groups = [(g, match.start(i)) for i, g in enumerate(match.groups(), 1) if g]
            if not values.intersection([g for g, _ in groups] or [match.group()]):
                continue
            # the secret: the match, or the group that follows a prefix (``key = "<it>"``)
            secret = match.group()
            if groups and groups[-1][1] > match.start():
                secret = groups[-1][0]
            if (
                placeholder(secret)
                or (rule == "secret.url-password" and _FORMAT_EXAMPLE.search(match.group()))
                or (rule == "secret.private-key" and not _key_body(segment[match.end() :] + after))
            ):
                continue
            size = "" if rule == "secret.private-key" else f" ({len(secret)} characters)"
            yield Hit(match.start(), match.end(), rule, f"{what}{size} is committed", priority=2)


# A URL's login as documentation writes it to show the format (``http://user:password@host``,
# in real tool descriptions): a generic user name with a generic password word.
_FORMAT_EXAMPLE: Final = re.compile(
    r"://(?:user(?:name)?|login|usr|name)?:(?:password|passwd|pass|pwd|pw|secret)@", re.I
)


def _key_body(following: str) -> bool:
    """Key material after a private key header (not a header quoted in documentation)."""
    return re.search(r"[A-Za-z0-9+/=]{24,}", following[:400].replace("\\n", "\n")) is not None
