"""The GitHub fake driven by PyGithub, including what its default retry does to each failure."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from github import Auth, Github, GithubException, GithubRetry
from github.GithubException import (
    BadCredentialsException,
    RateLimitExceededException,
    UnknownObjectException,
)

from tests.fakes.github import GitHubServer

GH_TOKEN = "ghp_test_token"


@pytest.fixture
def gh() -> Iterator[GitHubServer]:
    with GitHubServer(GH_TOKEN, repos=["acme/api"]) as server:
        yield server
        assert server.errors == []


def github(server: GitHubServer, token: str = GH_TOKEN, **kwargs: Any) -> Github:
    kwargs.setdefault("retry", None)
    return Github(
        auth=Auth.Token(token),
        base_url=kwargs.pop("base_url", server.url),
        seconds_between_requests=None,
        seconds_between_writes=None,
        timeout=5,
        **kwargs,
    )


def test_issue_create_comment_close_round_trip(gh: GitHubServer) -> None:
    repo = github(gh).get_repo("acme/api")
    issue = repo.create_issue("CI broken on main", body="details", labels=["incident", "sev2"])
    assert issue.number == 1 and [label.name for label in issue.labels] == ["incident", "sev2"]
    assert issue.user.login == "hub-bot" and issue.created_at.tzinfo is not None

    comment = issue.create_comment("acknowledged by @ana")
    assert comment.body == "acknowledged by @ana" and comment.id > 0
    issue.edit(state="closed", state_reason="completed")
    assert issue.state == "closed" and issue.closed_at is not None

    again = repo.get_issue(1)
    assert again.state_reason == "completed" and again.comments == 1
    assert [c.body for c in again.get_comments()] == ["acknowledged by @ana"]
    assert again.repository.full_name == "acme/api"
    [stored] = gh.issues("acme/api")
    assert stored.state == "closed" and stored.comments == ("acknowledged by @ana",)
    assert gh.created == 1

    with pytest.raises(GithubException) as invalid:
        repo.create_issue("")
    assert invalid.value.status == 422


def test_list_by_label_follows_link_pages_under_api_v3(gh: GitHubServer) -> None:
    client = github(gh, base_url=gh.api_url, per_page=2)
    repo = client.get_repo("acme/api")
    for n in range(5):
        repo.create_issue(f"incident {n}", labels=["incident"] if n != 2 else ["other"])
    repo.get_issue(1).edit(state="closed")

    every = [i.title for i in repo.get_issues(state="all", labels=["incident"])]
    assert every == ["incident 4", "incident 3", "incident 1", "incident 0"]
    assert [i.number for i in repo.get_issues(labels=["incident"])] == [5, 4, 2]
    pages = [c for c in gh.calls if c.path.endswith("/issues") and c.method == "GET"]
    assert pages[0].path.startswith("/api/v3/") and pages[1].query["page"] == "2"
    assert client.get_user().login == "hub-bot"


def test_credentials_and_unknown_repo(gh: GitHubServer) -> None:
    with pytest.raises(BadCredentialsException):
        github(gh, token="ghp_wrong").get_repo("acme/api")
    with pytest.raises(UnknownObjectException):
        github(gh).get_repo("acme/missing")
    anonymous = Github(base_url=gh.url, retry=None)
    with pytest.raises(GithubException) as info:
        anonymous.get_user().login  # noqa: B018 - the attribute read is the request
    assert info.value.status == 401


def test_rate_budget_headers_and_exhaustion(gh: GitHubServer) -> None:
    gh.set_rate_limit(3, reset_in_s=120)
    client = github(gh)
    repo = client.get_repo("acme/api")
    repo.create_issue("one")
    assert client.rate_limiting == (1, 3)
    assert all("x-ratelimit-used" in c.response_headers for c in gh.calls)
    repo.get_issue(1)
    with pytest.raises(RateLimitExceededException) as info:
        repo.get_issue(1)
    headers = info.value.headers or {}
    assert headers["x-ratelimit-remaining"] == "0"
    assert int(headers["x-ratelimit-reset"]) >= time.time() + 100

    gh.exhaust_rate_limit(reset_in_s=600)
    bounded = github(gh, retry=GithubRetry(max_rate_limit_wait=5))
    with pytest.raises(RateLimitExceededException):  # would otherwise sleep until the reset
        bounded.get_repo("acme/api")


def test_secondary_limits_and_server_errors(gh: GitHubServer) -> None:
    client = github(gh)
    gh.secondary_rate_limit(status=403, retry_after_s=30)
    with pytest.raises(RateLimitExceededException) as secondary:
        client.get_repo("acme/api")
    assert (secondary.value.headers or {})["retry-after"] == "30"
    gh.secondary_rate_limit(status=429, retry_after_s=30)
    with pytest.raises(GithubException) as too_many:
        client.get_repo("acme/api")
    assert too_many.value.status == 429 and not isinstance(
        too_many.value, RateLimitExceededException
    )

    gh.fail_next(status=502)
    with pytest.raises(GithubException) as bad_gateway:
        client.get_repo("acme/api")
    assert bad_gateway.value.status == 502


def test_default_retry_behaviour(gh: GitHubServer) -> None:
    client = github(gh, retry=Github.default_retry)
    gh.fail_next(2, status=500)
    assert client.get_repo("acme/api").full_name == "acme/api"  # GET retried at once

    repo = client.get_repo("acme/api")
    gh.fail_next(status=502, method="POST", applied=True)
    repo.create_issue("posted once")
    assert gh.created == 2  # POST is retried too: a lost answer means a duplicate issue

    gh.fail_next(status=500, method="PATCH")
    with pytest.raises(GithubException) as patch:
        repo.get_issue(1).edit(state="closed")
    assert patch.value.status == 500  # PATCH is not retried

    gh.fail_next(11, status=503)
    with pytest.raises(requests.exceptions.RetryError):  # ten retries spent, not a GithubException
        client.get_repo("acme/api")

    gh.secondary_rate_limit(status=403, retry_after_s=1)
    started = time.monotonic()
    assert client.get_repo("acme/api").name == "api"
    assert 0.9 < time.monotonic() - started < 1.9  # slept the Retry-After, then retried
