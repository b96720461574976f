"""pipeline.github against a loopback GitHub (tests/fakegithub.py): no network, no sleeps."""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakegithub import FakeGitHub, Fault

from pipeline.errors import EXIT_INCOMPLETE
from pipeline.github import (
    COMMENT_LIMIT,
    GATE_MARKER,
    STEP_SUMMARY_LIMIT,
    GitHubClient,
    GitHubError,
    annotate,
    event,
    group,
    in_actions,
    issue_comment_event,
    marker,
    notify_webhook,
    optional_client,
    pr_number,
    pull_request_event,
    set_output,
    truncate_comment,
    write_step_summary,
)

PR = 7


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.add_pull(PR, head="feature/prompt", base="main")
        yield server


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def client(gh: FakeGitHub, slept: list[float]) -> GitHubClient:
    return GitHubClient(gh.token, gh.repository, api_url=gh.url, sleep=slept.append)


def _raw(
    gh: FakeGitHub, method: str, path: str, *, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, Any]]:
    """A hand-made request (to see what the fake refuses)."""
    request = urllib.request.Request(gh.url + path, data=body, method=method)
    for name, value in headers.items():
        request.add_header(name.replace("_", "-"), value)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read() or b"null")


# -- upsert ------------------------------------------------------------------------------------


def test_upsert_creates_once_then_updates_the_same_comment(gh: FakeGitHub, client: GitHubClient):
    first = client.upsert_comment(PR, "## Gate: 3 regressions")
    assert first.action == "created"
    assert len(gh.comments[PR]) == 1
    stored = gh.comments[PR][0]
    assert stored["body"].startswith(GATE_MARKER + "\n")  # marker added on the first line
    assert stored["user"]["login"] == "github-actions[bot]"

    posts = gh.count("POST", "/comments")
    second = client.upsert_comment(PR, "## Gate: all good")
    assert second.action == "updated"
    assert second.comment.id == first.comment.id
    assert gh.count("POST", "/comments") == posts  # second run: zero new comments
    assert len(gh.comments[PR]) == 1
    assert gh.comments[PR][0]["body"].endswith("## Gate: all good")

    third = client.upsert_comment(PR, "## Gate: all good")
    assert third.action == "unchanged"
    assert gh.count("PATCH") == 1  # an identical body is not re-sent


def test_a_fresh_client_finds_the_comment_a_previous_run_left(gh: FakeGitHub):
    for verdict in ("fail", "pass", "fail"):
        run = GitHubClient.from_env(gh.env())  # each CI run is a new process
        run.upsert_comment(PR, f"verdict: {verdict}")
    assert [c["body"] for c in gh.comments[PR]] == [f"{GATE_MARKER}\nverdict: fail"]


def test_pagination_finds_the_marker_on_page_two(gh: FakeGitHub, client: GitHubClient):
    for i in range(130):
        gh.add_comment(PR, f"review comment {i}")
    ours = gh.add_comment(
        PR, f"{GATE_MARKER}\nold verdict", login="github-actions[bot]", user_type="Bot"
    )
    for i in range(5):
        gh.add_comment(PR, f"later comment {i}")

    result = client.upsert_comment(PR, "new verdict")

    assert result.action == "updated" and result.comment.id == ours["id"]
    assert len(gh.comments[PR]) == 136  # nothing new
    pages = [r for r in gh.requests if r.method == "GET" and "/comments" in r.path]
    assert [r.query.get("page", "1") for r in pages] == ["1", "2"]
    assert all(r.query["per_page"] == "100" for r in pages)
    assert pages[1].path.startswith("/repositories/")  # followed GitHub's Link URL as given


def test_a_person_pasting_the_marker_does_not_get_their_comment_overwritten(
    gh: FakeGitHub, client: GitHubClient
):
    human = gh.add_comment(PR, f"I copied this: {GATE_MARKER}")
    result = client.upsert_comment(PR, "verdict")
    assert result.action == "created"
    assert human["body"] == f"I copied this: {GATE_MARKER}"
    assert client.upsert_comment(PR, "verdict 2").comment.id == result.comment.id


def test_with_a_personal_token_only_its_own_comments_count():
    with FakeGitHub(login="release-bot-user", user_type="User", identity_visible=True) as gh:
        gh.add_pull(PR)
        gh.add_comment(PR, f"{GATE_MARKER}\nby another bot", login="other[bot]", user_type="Bot")
        client = GitHubClient.from_env(gh.env())
        assert client.authenticated_login() == "release-bot-user"
        created = client.upsert_comment(PR, "mine")
        assert created.action == "created"
        assert client.upsert_comment(PR, "mine, updated").comment.id == created.comment.id
        assert gh.count("GET", "/user") == 1  # identity looked up once per client


def test_without_get_user_another_bots_comment_with_the_marker_is_not_ours(
    gh: FakeGitHub, client: GitHubClient
):
    """The workflow token cannot read GET /user: only github-actions[bot]'s comment is ours, not
    any Bot's that carries the marker (another app quoting it, say)."""
    other = gh.add_comment(
        PR, f"{GATE_MARKER}\nquoted by another app", login="quote-bot[bot]", user_type="Bot"
    )
    result = client.upsert_comment(PR, "verdict")
    assert result.action == "created" and result.comment.user_login == "github-actions[bot]"
    assert other["body"] == f"{GATE_MARKER}\nquoted by another app"
    assert client.upsert_comment(PR, "verdict 2").comment.id == result.comment.id
    assert [r.path for r in gh.requests if r.method == "PATCH"] == [
        f"/repos/{gh.repository}/issues/comments/{result.comment.id}"
    ]


def test_a_github_app_token_names_the_login_it_posts_as():
    """A GitHub App's installation token cannot read GET /user either; KNOWNGOOD_GITHUB_LOGIN
    says which bot it posts as, and only that bot's comment is updated."""
    with FakeGitHub(login="knowngood-app[bot]") as gh:
        gh.add_pull(PR)
        workflow = gh.add_comment(
            PR, f"{GATE_MARKER}\nold", login="github-actions[bot]", user_type="Bot"
        )
        env = {**gh.env(), "KNOWNGOOD_GITHUB_LOGIN": "knowngood-app[bot]"}
        first = GitHubClient.from_env(env).upsert_comment(PR, "mine")
        assert first.action == "created" and workflow["body"] == f"{GATE_MARKER}\nold"
        again = GitHubClient.from_env(env).upsert_comment(PR, "mine, updated")
        assert again.action == "updated" and again.comment.id == first.comment.id
        assert gh.count("GET", "/user") == 0  # the login was given: no need to ask


def test_other_markers_are_kept_apart(gh: FakeGitHub, client: GitHubClient):
    client.upsert_comment(PR, "gate")
    client.upsert_comment(PR, "revert notice", marker("revert"))
    client.upsert_comment(PR, "gate again")
    assert len(gh.comments[PR]) == 2
    with pytest.raises(ValueError):
        client.upsert_comment(PR, "x", "knowngood:gate")
    with pytest.raises(ValueError):
        marker("Has Spaces")


def test_a_lost_response_to_the_create_does_not_make_a_second_comment(
    gh: FakeGitHub, client: GitHubClient, slept: list[float]
):
    # GitHub applies the POST, the gateway answers 502: the retry must look before posting again.
    gh.push_faults(Fault.server_error(502, method="POST", after=True))
    result = client.upsert_comment(PR, "verdict")
    assert len(gh.comments[PR]) == 1
    assert result.action == "created" and result.comment.id == gh.comments[PR][0]["id"]
    assert gh.count("POST", "/comments") == 1
    assert slept == []  # a POST is never retried blindly


def test_a_502_before_the_create_lands_is_retried_once(gh: FakeGitHub, client: GitHubClient):
    gh.push_faults(Fault.server_error(502, method="POST"))
    assert client.upsert_comment(PR, "verdict").action == "created"
    assert len(gh.comments[PR]) == 1


# -- comment size ------------------------------------------------------------------------------


def test_comment_bodies_are_truncated_to_githubs_limit_with_a_note(
    gh: FakeGitHub, client: GitHubClient
):
    rows = "\n".join(f"| case-{i:05d} | failed | {'x' * 60} |" for i in range(2000))
    body = f"## Gate\n\n```text\n{rows}\n```\n\nthe end"
    assert len(body) > COMMENT_LIMIT

    result = client.upsert_comment(PR, body)  # the fake answers 422 above 65,536 characters

    stored = gh.comments[PR][0]["body"]
    assert result.truncated
    assert len(stored) <= COMMENT_LIMIT
    assert stored.startswith(GATE_MARKER)
    assert "**Truncated:**" in stored and "65,536" in stored
    assert "the end" not in stored
    assert stored.count("```") % 2 == 0  # the open code fence was closed before the note


def test_truncate_comment_leaves_short_bodies_alone():
    assert truncate_comment("short") == ("short", False)
    exact = "é" * COMMENT_LIMIT
    assert truncate_comment(exact) == (exact, False)
    cut, truncated = truncate_comment("é" * (COMMENT_LIMIT + 1))
    assert truncated and len(cut) <= COMMENT_LIMIT


def test_the_fake_rejects_an_oversized_comment(gh: FakeGitHub):
    status, body = _raw(
        gh,
        "POST",
        f"/repos/{gh.repository}/issues/{PR}/comments",
        body=json.dumps({"body": "x" * (COMMENT_LIMIT + 1)}).encode(),
        Authorization=f"Bearer {gh.token}",
        User_Agent="t",
    )
    assert status == 422 and "too long" in body["errors"][0]["message"]


# -- malformed requests ------------------------------------------------------------------------


COMMENTS = "/repos/{repo}/issues/7/comments"


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "message"),
    [
        ("GET", COMMENTS, None, {"Authorization": None}, 401, "Requires authentication"),
        ("GET", COMMENTS, None, {"Authorization": "Bearer nope"}, 401, "Bad credentials"),
        ("GET", COMMENTS, None, {"Accept": "text/html"}, 415, "Unsupported 'Accept'"),
        ("GET", COMMENTS, None, {"X_GitHub_Api_Version": "1999-01-01"}, 400, "not supported"),
        ("POST", COMMENTS, b"{not json", {}, 400, "Problems parsing JSON"),
        ("POST", COMMENTS, b'["body"]', {}, 400, "Problems parsing JSON"),
        ("POST", COMMENTS, b'{"text": "hi"}', {}, 422, "wasn't supplied"),
        ("POST", COMMENTS, b'{"body": 42}', {}, 422, "is not a string"),
        ("PATCH", "/repos/{repo}/issues/comments/999999", b'{"body": "x"}', {}, 404, "Not Found"),
        ("GET", "/repos/{repo}/issues/8/comments", None, {}, 404, "Not Found"),
        ("GET", "/repos/someone/else/pulls", None, {}, 404, "Not Found"),
        ("GET", "/repos/{repo}/wiki", None, {}, 404, "Not Found"),
        ("POST", "/repos/{repo}/pulls", b'{"title": "t"}', {}, 422, "Validation Failed"),
    ],
)
def test_the_fake_rejects_malformed_requests_like_github(
    gh: FakeGitHub, method, path, body, headers, status, message
):
    sent = {
        "Authorization": f"Bearer {gh.token}",
        "Accept": "application/vnd.github+json",
        "User_Agent": "test",
        **headers,
    }
    code, payload = _raw(
        gh,
        method,
        path.format(repo=gh.repository),
        body=body,
        **{k: v for k, v in sent.items() if v is not None},
    )
    assert code == status
    assert message in payload["message"]
    assert gh.token not in json.dumps(payload)


def test_the_fake_requires_a_user_agent(gh: FakeGitHub):
    with socket.create_connection(("127.0.0.1", int(gh.url.rsplit(":", 1)[1])), timeout=5) as s:
        s.sendall(
            f"GET /repos/{gh.repository}/pulls HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {gh.token}\r\nConnection: close\r\n\r\n".encode()
        )
        reply = b"".join(iter(lambda: s.recv(65536), b""))
    assert reply.startswith(b"HTTP/1.1 403") and b"User-Agent" in reply


def test_every_client_request_is_well_formed(gh: FakeGitHub, client: GitHubClient):
    client.upsert_comment(PR, "verdict")
    client.list_pull_requests()
    for r in gh.requests:
        assert r.headers["authorization"] == f"Bearer {gh.token}"
        assert r.headers["accept"] == "application/vnd.github+json"
        assert r.headers["x-github-api-version"] == "2022-11-28"
        assert r.headers["user-agent"].startswith("knowngood/")
        assert r.status is not None and r.status < 500
    assert gh.leaks(gh.token) == []


def test_a_client_error_is_a_github_error_with_exit_code_3(gh: FakeGitHub, slept: list[float]):
    wrong_repo = GitHubClient(gh.token, "octo-org/missing", api_url=gh.url, sleep=slept.append)
    with pytest.raises(GitHubError) as info:
        wrong_repo.list_issue_comments(PR)
    error = info.value
    assert error.exit_code == EXIT_INCOMPLETE
    assert error.status == 404
    assert "GET /repos/octo-org/missing/issues/7/comments: 404 Not Found" in str(error)
    assert "GITHUB_REPOSITORY" in (error.hint or "")
    assert slept == []  # a 4xx is not retried


def test_validation_errors_are_spelled_out(gh: FakeGitHub, client: GitHubClient):
    with pytest.raises(GitHubError) as info:
        client.create_pull_request(title="t", head="", base="main")
    assert info.value.status == 422
    assert "head: missing_field" in str(info.value)


# -- the token stays secret --------------------------------------------------------------------


def test_the_token_is_never_in_errors_or_logs(
    gh: FakeGitHub, slept: list[float], caplog: pytest.LogCaptureFixture, capsys
):
    caplog.set_level(logging.DEBUG)
    wrong = "ghp_WrongTokenButStillSecret0123456789"
    failures: list[GitHubError] = []
    for token in (wrong, gh.token):
        client = GitHubClient(token, gh.repository, api_url=gh.url, sleep=slept.append)
        if token == gh.token:  # a server that echoes the token back, and a 5xx to log a retry
            gh.push_faults(
                Fault(status=500, message=f"boom for {token}"),
                Fault(status=500, message=f"boom again {token}"),
            )
        with pytest.raises(GitHubError) as info:
            client.upsert_comment(PR, "x")
        failures.append(info.value)
    assert failures[0].status == 401 and "GITHUB_TOKEN" in (failures[0].hint or "")
    assert gh.token not in repr(client) + repr(vars(client))
    assert failures[1].status == 500 and "***" in str(failures[1])
    out = capsys.readouterr()
    for secret in (wrong, gh.token):
        for error in failures:
            assert secret not in str(error) and secret not in repr(error)
            assert secret not in error.github_message
        assert secret not in caplog.text
        assert secret not in out.out + out.err
        assert gh.leaks(secret) == []


def test_a_token_with_whitespace_is_refused_without_echoing_it(gh: FakeGitHub):
    with pytest.raises(GitHubError) as info:
        GitHubClient("ghs_abc\r\nX-Evil: 1", gh.repository, api_url=gh.url)
    assert "ghs_abc" not in str(info.value)


def test_no_token_is_a_clear_error():
    with pytest.raises(GitHubError) as info:
        GitHubClient.from_env({"GITHUB_REPOSITORY": "o/r"})
    assert "GITHUB_TOKEN" in str(info.value) and info.value.exit_code == EXIT_INCOMPLETE
    client = GitHubClient.from_env({"GH_TOKEN": "ghp_x", "GITHUB_REPOSITORY": "o/r"})
    assert client.api_url == "https://api.github.com"
    with pytest.raises(GitHubError, match="owner/name"):
        GitHubClient.from_env({"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "just-a-name"})


def test_github_is_optional_without_a_token():
    """One token check for every command where GitHub is optional (deploy, check, revert...):
    no token, or a blank one, means no client; GH_TOKEN stands in for GITHUB_TOKEN."""
    assert optional_client({"GITHUB_REPOSITORY": "o/r"}) is None
    assert optional_client({"GITHUB_TOKEN": " \n", "GITHUB_REPOSITORY": "o/r"}) is None
    client = optional_client({"GH_TOKEN": "ghp_x", "GITHUB_REPOSITORY": "o/r"})
    assert client is not None and client.api_url == "https://api.github.com"


def test_link_urls_to_another_origin_never_get_the_token(gh: FakeGitHub, client: GitHubClient):
    with pytest.raises(GitHubError, match="another origin"):
        client.request("GET", "https://evil.example.com/repos/x")
    assert gh.requests == []


# -- retries -----------------------------------------------------------------------------------


def test_a_502_is_retried_once(gh: FakeGitHub, client: GitHubClient, slept: list[float]):
    gh.push_faults(Fault.server_error(502))
    assert [pr.number for pr in client.list_pull_requests()] == [PR]
    assert slept == [1.0]
    assert gh.count("GET", "/pulls") == 2


def test_two_502s_give_up(gh: FakeGitHub, client: GitHubClient, slept: list[float]):
    gh.push_faults(Fault.server_error(502), Fault.server_error(503))
    with pytest.raises(GitHubError) as info:
        client.get_pull_request(PR)
    assert info.value.status == 503 and info.value.server_error
    assert len(slept) == 1


def test_a_secondary_rate_limit_waits_retry_after(
    gh: FakeGitHub, client: GitHubClient, slept: list[float]
):
    gh.push_faults(Fault.secondary_rate_limit(retry_after=7, method="POST"))
    assert client.upsert_comment(PR, "verdict").action == "created"
    assert slept == [7.0]  # a rate-limited POST was not applied: retrying it is safe
    assert gh.count("POST", "/comments") == 2
    assert len(gh.comments[PR]) == 1


def test_a_rate_limit_longer_than_the_cap_fails_fast(gh: FakeGitHub, slept: list[float]):
    client = GitHubClient(
        gh.token, gh.repository, api_url=gh.url, sleep=slept.append, max_retry_wait=30
    )
    gh.push_faults(Fault.secondary_rate_limit(retry_after=600))
    with pytest.raises(GitHubError) as info:
        client.get_pull_request(PR)
    assert slept == []
    assert info.value.status == 403 and "wait 600s" in str(info.value)


def test_a_secondary_rate_limit_without_retry_after_waits_a_minute(
    gh: FakeGitHub, client: GitHubClient, slept: list[float]
):
    gh.push_faults(Fault.secondary_rate_limit(retry_after=None))
    client.get_pull_request(PR)
    assert slept == [60.0]


def test_an_exhausted_primary_rate_limit_is_not_retried_for_an_hour(
    gh: FakeGitHub, client: GitHubClient, slept: list[float]
):
    import time

    gh.push_faults(Fault.primary_rate_limit(reset_epoch=int(time.time()) + 3600))
    with pytest.raises(GitHubError, match="rate limit"):
        client.get_pull_request(PR)
    assert slept == []


def test_an_unreachable_api_is_a_github_error(slept: list[float]):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = GitHubClient("ghs_t", "o/r", api_url=f"http://127.0.0.1:{port}", sleep=slept.append)
    with pytest.raises(GitHubError, match="could not reach the GitHub API") as info:
        client.get_pull_request(1)
    assert info.value.status is None
    assert slept == [1.0]  # a GET is retried once


# -- pull requests and labels ------------------------------------------------------------------


def test_revert_pull_requests_are_created_found_and_labelled(gh: FakeGitHub, client: GitHubClient):
    mark = marker("revert:" + "d" * 40)
    pr = client.create_pull_request(
        title="Revert: support agent v1.4.0",
        head="knowngood/revert-ddddddd",
        base="main",
        body=f"{mark}\nThe post-deploy check failed.",
    )
    assert (
        pr.state == "open" and pr.head_ref == "knowngood/revert-ddddddd" and pr.base_ref == "main"
    )
    assert gh.pulls[pr.number]["body"].startswith(mark)

    again = client.create_pull_request(
        title="Revert again", head="knowngood/revert-ddddddd", base="main"
    )
    assert again.number == pr.number  # 422 "already exists" -> the open one

    assert [p.number for p in client.find_pull_requests(marker=mark)] == [pr.number]
    assert client.find_pull_requests(title_contains="Revert:")[0].number == pr.number
    assert client.find_pull_requests(marker=marker("revert:" + "e" * 40)) == []
    assert client.add_labels(pr.number, ["knowngood:revert", "incident"]) == [
        "knowngood:revert",
        "incident",
    ]
    assert client.get_pull_request(pr.number).labels == ("knowngood:revert", "incident")


def test_the_merged_pull_request_of_a_commit(gh: FakeGitHub, client: GitHubClient):
    sha = "f" * 40
    assert client.merged_pull_request_for_commit(sha) is None
    gh.merge(PR, sha)
    # A client asks once per commit (a command run is one client): a new run sees the merge.
    assert client.merged_pull_request_for_commit(sha) is None
    assert gh.count("GET", f"/commits/{sha}/pulls") == 1
    client = GitHubClient(gh.token, gh.repository, api_url=gh.url)
    merged = client.merged_pull_request_for_commit(sha)
    assert merged is not None and merged.number == PR and merged.merged
    assert merged.merge_commit_sha == sha
    assert client.list_pull_requests(state="open") == []
    assert [p.number for p in client.list_pull_requests(state="closed")] == [PR]
    client.upsert_comment(PR, "The post-deploy check failed; revert opened.", marker("incident"))
    assert len(gh.comments[PR]) == 1


# -- step summary ------------------------------------------------------------------------------


def test_step_summary_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    summary = tmp_path / "summary.md"
    summary.write_text("# from an earlier command\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    first = write_step_summary("## Gate")
    second = write_step_summary("## Eval\n")
    assert summary.read_text(encoding="utf-8") == "# from an earlier command\n## Gate\n## Eval\n"
    assert first is not None and not first.truncated and first.bytes_written == len("## Gate\n")
    assert second is not None and not second.truncated


def test_step_summary_is_cut_at_one_mib_on_a_character_boundary(tmp_path: Path):
    summary = tmp_path / "summary.md"
    summary.write_bytes(b"x" * 1000 + b"\n")
    line = "| case | 🙂 résumé — ✓ |\n"  # 1- to 4-byte characters
    huge = line * (STEP_SUMMARY_LIMIT // len(line.encode()) + 500)

    result = write_step_summary(huge, path=summary)

    data = summary.read_bytes()
    assert result is not None and result.truncated
    assert len(data) <= STEP_SUMMARY_LIMIT
    text = data.decode("utf-8")  # strict: no character was cut in half
    assert text.startswith("x" * 1000 + "\n| case |")
    assert "**Truncated:**" in text and "1 MiB" in text
    assert text.rstrip().endswith("full report.")

    later = write_step_summary("## more", path=summary)  # the step is full: only a note, or nothing
    assert later is not None and len(summary.read_bytes()) <= STEP_SUMMARY_LIMIT


def test_step_summary_every_cut_point_is_valid_utf8(tmp_path: Path):
    from pipeline.github.text import fit_summary

    text = "aé🙂" * 50
    for available in range(0, 120):
        cut, _ = fit_summary(text, available)
        assert len(cut.encode("utf-8")) <= available
        cut.encode("utf-8").decode("utf-8")


def test_step_summary_outside_actions_is_a_no_op():
    assert write_step_summary("# nothing") is None
    assert not in_actions()


# -- outputs, annotations, groups --------------------------------------------------------------


def test_set_output_writes_the_output_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    assert set_output("verdict", "pass") is False  # outside a workflow: nothing at all
    assert capsys.readouterr().out == ""
    output = tmp_path / "output"
    output.touch()
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert set_output("verdict", "fail\nwith detail") is True
    text = output.read_text(encoding="utf-8")
    assert text.startswith("verdict<<ghadelimiter_") and "fail\nwith detail" in text


def test_annotations_and_groups(capsys):
    with group("knowngood gate"):
        annotate(
            "error", "regressed", file="evals/support/refunds.yaml", line=12, title="knowngood eval"
        )
        annotate("notice", "100% pass")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "::group::knowngood gate"
    assert lines[1].startswith("::error ") and "file=evals/support/refunds.yaml" in lines[1]
    assert "line=12" in lines[1] and lines[1].endswith("::regressed")
    assert lines[2] == "::notice::100%25 pass"  # workflow-command escaping
    assert lines[3] == "::endgroup::"
    assert (
        lines[1]
        == "::error title=knowngood eval,file=evals/support/refunds.yaml,line=12::regressed"
    )


def test_annotation_columns_only_on_one_line_spans(capsys):
    annotate("warning", "a, b", file="a.yaml", line=3, end_line=5, column=2, end_column=9)
    annotate("warning", "c", file="a.yaml", line=3, column=2, end_column=9)
    first, second = capsys.readouterr().out.splitlines()
    assert first == "::warning file=a.yaml,line=3,endLine=5::a, b"
    assert second == "::warning file=a.yaml,line=3,col=2,endColumn=9::c"


# -- events ------------------------------------------------------------------------------------

PULL_REQUEST_EVENT = {
    "action": "synchronize",
    "number": 42,
    "pull_request": {
        "url": "https://api.github.com/repos/octo-org/agents/pulls/42",
        "id": 1,
        "number": 42,
        "state": "open",
        "title": "Tighten the refund prompt",
        "user": {"login": "octocat", "type": "User"},
        "head": {
            "label": "contributor:refund-prompt",
            "ref": "refund-prompt",
            "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
            "repo": {"full_name": "contributor/agents"},
        },
        "base": {
            "label": "octo-org:main",
            "ref": "main",
            "sha": "9049f1265b7d61be4a8904a9a27120d2064dab3b",
            "repo": {"full_name": "octo-org/agents"},
        },
    },
    "repository": {"full_name": "octo-org/agents"},
    "sender": {"login": "octocat", "type": "User"},
}

ISSUE_COMMENT_EVENT = {
    "action": "created",
    "issue": {
        "number": 42,
        "title": "Tighten the refund prompt",
        "user": {"login": "octocat", "type": "User"},
        "pull_request": {"url": "https://api.github.com/repos/octo-org/agents/pulls/42"},
    },
    "comment": {
        "id": 1362934389,
        "body": "/knowngood revert",
        "user": {"login": "maintainer", "type": "User"},
        "author_association": "MEMBER",
    },
    "repository": {"full_name": "octo-org/agents"},
    "sender": {"login": "maintainer", "type": "User"},
}


def _event_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, payload: dict[str, Any]
) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(path))
    monkeypatch.setenv("GITHUB_EVENT_NAME", name)


def test_pull_request_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _event_file(tmp_path, monkeypatch, "pull_request", PULL_REQUEST_EVENT)
    assert event()["action"] == "synchronize"
    pr = pull_request_event()
    assert pr is not None
    assert (pr.number, pr.base_sha, pr.head_sha) == (
        42,
        "9049f1265b7d61be4a8904a9a27120d2064dab3b",
        "6dcb09b5b57875f334f61aebed695e2e4193db5e",
    )
    assert (pr.base_ref, pr.head_ref) == ("main", "refund-prompt")
    assert pr.from_fork
    assert pr_number() == 42
    assert issue_comment_event() is None


def test_issue_comment_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _event_file(tmp_path, monkeypatch, "issue_comment", ISSUE_COMMENT_EVENT)
    comment = issue_comment_event()
    assert comment is not None
    assert comment.issue_number == 42 and comment.is_pull_request
    assert comment.body == "/knowngood revert" and comment.author == "maintainer"
    assert comment.author_association == "MEMBER" and comment.trusted
    assert pr_number() == 42
    assert pull_request_event() is None


def test_issue_comment_from_an_outsider_on_a_plain_issue():
    payload = json.loads(json.dumps(ISSUE_COMMENT_EVENT))
    del payload["issue"]["pull_request"]
    payload["comment"]["author_association"] = "NONE"
    comment = issue_comment_event(payload)
    assert comment is not None and not comment.is_pull_request and not comment.trusted
    assert pr_number(payload) is None


def test_no_event_outside_actions(tmp_path: Path):
    assert event() == {}
    assert pr_number() is None
    bad = tmp_path / "event.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(GitHubError, match="event payload"):
        event(bad)


# -- webhook -----------------------------------------------------------------------------------


def test_notify_webhook_posts_text_and_payload(gh: FakeGitHub):
    result = notify_webhook(
        f"{gh.url}/hooks/T000/B000/secretpart",
        {"event": "revert", "agent": "support", "version": "v1.4.0", "reason": "check failed"},
    )
    assert result.ok and result.status == 200 and result.error is None
    (sent,) = gh.webhooks
    assert sent["event"] == "revert" and sent["agent"] == "support"
    assert sent["text"].startswith("knowngood: revert") and "agent: support" in sent["text"]
    assert notify_webhook(f"{gh.url}/hooks/x", {"a": 1}, text="custom").ok
    assert gh.webhooks[-1]["text"] == "custom"


def test_notify_webhook_to_a_dead_port_reports_instead_of_raising(caplog: pytest.LogCaptureFixture):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks/T000/B000/secretpart"
    result = notify_webhook(url, {"event": "revert"}, timeout=2)
    assert not result.ok and result.status is None
    assert result.error is not None and f"127.0.0.1:{port}" in result.error
    assert "secretpart" not in result.error and "secretpart" not in caplog.text


def test_notify_webhook_reports_http_errors_and_bad_urls(gh: FakeGitHub):
    result = notify_webhook(f"{gh.url}/not-a-hook", {"event": "x"})  # 401 from the API side
    assert not result.ok and result.status == 401
    assert not notify_webhook("file:///etc/passwd", {}).ok
    assert not notify_webhook("not a url at all", {}).ok


# -- transport details -------------------------------------------------------------------------


def test_link_headers_and_retry_after_parse_like_githubs():
    from pipeline.github._http import parse_link, retry_after_seconds

    header = (
        '<https://api.github.com/repositories/1300192/issues?page=2>; rel="prev", '
        '<https://api.github.com/repositories/1300192/issues?page=4>; rel="next", '
        '<https://api.github.com/repositories/1300192/issues?page=515>; rel="last"'
    )
    links = parse_link(header)
    assert links["next"].endswith("page=4") and links["last"].endswith("page=515")
    assert parse_link("") == {}
    assert retry_after_seconds({"retry-after": "30"}) == 30.0
    assert (
        retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470) == 10
    )
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_a_redirect_to_another_origin_drops_the_token():
    from pipeline.github._http import _SameOriginRedirects

    handler = _SameOriginRedirects()
    request = urllib.request.Request("https://api.github.com/repos/o/r/pulls/1")
    request.add_header("Authorization", "Bearer ghs_secret")
    same = handler.redirect_request(
        request, None, 301, "", {}, "https://api.github.com/repositories/9/pulls/1"
    )
    other = handler.redirect_request(request, None, 302, "", {}, "https://objects.example.com/x")
    assert same is not None and same.get_header("Authorization") == "Bearer ghs_secret"
    assert other is not None and other.get_header("Authorization") is None
