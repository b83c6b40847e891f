"""IssueTracker against the local GitHub fake: the tracking-issue round trip, markers, and
how each failure reaches the caller (never by sleeping in the worker thread)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from integrations.github_api import LABEL, IssueTracker, hidden
from integrations.outbound import Permanent, RateLimited, Transient
from tests.fakes.github import GitHubServer

TOKEN = "ghp_test_token"
REPO = "acme/api"


@pytest.fixture
def gh() -> Iterator[GitHubServer]:
    with GitHubServer(TOKEN, repos=[REPO]) as server:
        yield server
        assert server.errors == []


@pytest.fixture
def tracker(gh: GitHubServer) -> IssueTracker:
    return IssueTracker(TOKEN, gh.api_url, REPO, timeout=5)


def test_create_find_comment_close_round_trip(gh: GitHubServer, tracker: IssueTracker) -> None:
    number = tracker.create("[SEV2] CI broken", "details", ["incident"], marker="incident:inc_1")
    [issue] = gh.issues(REPO)
    assert issue.number == number and issue.title == "[SEV2] CI broken"
    assert set(issue.labels) == {LABEL, "incident"}
    assert issue.body == "details\n\n<!-- hub:incident:inc_1 -->"
    assert hidden("incident:inc_1") == "<!-- hub:incident:inc_1 -->"

    assert tracker.find("incident:inc_1") == number
    assert tracker.find("incident:inc_2") is None

    assert not tracker.has_comment(number, "comment:1")
    tracker.comment(number, "Acknowledged by ana", marker="comment:1")
    assert tracker.has_comment(number, "comment:1")
    assert not tracker.has_comment(number, "comment:2")
    [stored] = gh.issues(REPO)
    assert stored.comments == ("Acknowledged by ana\n\n<!-- hub:comment:1 -->",)

    tracker.close(number)
    [closed] = gh.issues(REPO)
    assert (closed.state, closed.state_reason) == ("closed", "completed")
    tracker.reopen(number)
    assert gh.issues(REPO)[0].state == "open"
    assert tracker.find("incident:inc_1") == number  # closed or open, it is found


def test_labels_are_not_repeated(gh: GitHubServer, tracker: IssueTracker) -> None:
    tracker.create("t", "b", [LABEL, "incident"], marker="m")
    assert gh.issues(REPO)[0].labels.count(LABEL) == 1


def test_no_request_until_a_call_and_one_request_per_call(
    gh: GitHubServer, tracker: IssueTracker
) -> None:
    assert gh.calls == []  # lazy: building the tracker costs no budget
    number = tracker.create("t", "b", [], marker="m")
    tracker.comment(number, "c", marker="c1")
    tracker.close(number)
    assert [(c.method, c.path.removeprefix("/api/v3")) for c in gh.calls] == [
        ("POST", f"/repos/{REPO}/issues"),
        ("POST", f"/repos/{REPO}/issues/{number}/comments"),
        ("PATCH", f"/repos/{REPO}/issues/{number}"),
    ]


def test_find_looks_past_the_first_page_and_only_at_hub_issues(
    gh: GitHubServer, tracker: IssueTracker
) -> None:
    first = tracker.create("oldest", "b", [], marker="incident:old")
    for n in range(101):
        tracker.create(f"newer {n}", "b", [], marker=f"incident:{n}")
    assert tracker.find("incident:old") == first
    pages = [c for c in gh.calls if c.method == "GET" and c.path.endswith("/issues")]
    assert len(pages) == 2 and pages[0].query["labels"] == LABEL
    assert pages[0].query["state"] == "all" and pages[0].query["direction"] == "desc"


def test_issue_url_needs_no_request(gh: GitHubServer, tracker: IssueTracker) -> None:
    public = IssueTracker(TOKEN, "https://api.github.com", REPO)
    assert public.issue_url(7) == "https://github.com/acme/api/issues/7"
    ghes = IssueTracker(TOKEN, "https://ghe.example.com/api/v3/", REPO)
    assert ghes.issue_url(7) == "https://ghe.example.com/acme/api/issues/7"
    assert tracker.issue_url(7) == f"{gh.url}/acme/api/issues/7"
    assert gh.calls == []


def test_an_exhausted_rate_limit_is_rate_limited_until_the_reset(
    gh: GitHubServer, tracker: IssueTracker
) -> None:
    gh.exhaust_rate_limit(reset_in_s=120)
    started = time.monotonic()
    with pytest.raises(RateLimited) as info:
        tracker.create("t", "b", [], marker="m")
    assert time.monotonic() - started < 2  # no sleeping until the reset
    assert 100 <= info.value.retry_after <= 121
    assert gh.issues(REPO) == []


def test_a_429_exhaustion_is_rate_limited_too(gh: GitHubServer, tracker: IssueTracker) -> None:
    gh.exhaust_rate_limit(reset_in_s=30, status=429)
    with pytest.raises(RateLimited) as info:
        tracker.find("m")
    assert 10 <= info.value.retry_after <= 31


@pytest.mark.parametrize("status", [403, 429])
def test_a_secondary_limit_waits_its_retry_after(
    gh: GitHubServer, tracker: IssueTracker, status: int
) -> None:
    gh.secondary_rate_limit(status=status, retry_after_s=30)
    with pytest.raises(RateLimited) as info:
        tracker.comment(1, "c", marker="c")
    assert info.value.retry_after == 30


def test_a_secondary_limit_without_retry_after_waits_a_minute(
    gh: GitHubServer, tracker: IssueTracker
) -> None:
    # Every answer carries x-ratelimit-reset; with budget left it is not the wait.
    gh.set_rate_limit(5000, reset_in_s=3000)
    gh.secondary_rate_limit(status=403, retry_after_s=None)
    with pytest.raises(RateLimited) as info:
        tracker.close(1)
    assert info.value.retry_after == 60


def test_a_bad_token_is_permanent_and_never_in_the_reason(gh: GitHubServer) -> None:
    wrong = "ghp_wrong_secret_value"
    with pytest.raises(Permanent) as info:
        IssueTracker(wrong, gh.api_url, REPO).create("t", "b", [], marker="m")
    assert "401" in info.value.reason and "Bad credentials" in info.value.reason
    assert wrong not in info.value.reason and wrong not in str(info.value)


def test_unknown_repo_or_issue_and_invalid_input_are_permanent(
    gh: GitHubServer, tracker: IssueTracker
) -> None:
    with pytest.raises(Permanent, match="404"):
        IssueTracker(TOKEN, gh.api_url, "acme/missing").find("m")
    with pytest.raises(Permanent, match="404"):
        tracker.comment(99, "c", marker="c")
    with pytest.raises(Permanent, match="422"):
        tracker.create("", "b", [], marker="m")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient_and_not_retried(
    gh: GitHubServer, tracker: IssueTracker, status: int
) -> None:
    gh.fail_next(status=status, method="POST", applied=True)
    with pytest.raises(Transient, match=str(status)):
        tracker.create("t", "b", [], marker="incident:lost")
    # The POST took effect; it was not sent again (that would be a duplicate issue)...
    assert gh.created == 1
    # ...and the marker tells the caller so before it tries again.
    assert tracker.find("incident:lost") == 1


def test_a_dropped_connection_is_transient(gh: GitHubServer, tracker: IssueTracker) -> None:
    gh.set_down("close")
    with pytest.raises(Transient):
        tracker.has_comment(1, "c")


def test_a_long_body_keeps_its_marker(gh: GitHubServer, tracker: IssueTracker) -> None:
    number = tracker.create("t", "x" * 70_000, [], marker="incident:long")
    [issue] = gh.issues(REPO)
    assert issue.body is not None and len(issue.body) <= 65_536
    assert tracker.find("incident:long") == number
