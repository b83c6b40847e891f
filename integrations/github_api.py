"""A thin GitHub client for incident tracking issues, over PyGithub.

`retry=None`: PyGithub's default retry sleeps until a rate limit resets (an hour, without
bound) in the calling thread, and re-sends a POST after a 5xx or a lost answer, which can
create the same issue twice. Its pacing (a second between writes) is off as well: the hub
keeps one budget shared by all workers. Failures become `RateLimited` / `Transient` /
`Permanent`, and the caller reschedules. Every issue and comment carries a hidden marker so
that, after a call whose answer was lost, the caller can check whether it took effect before
making it again."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from github import Auth, Github, GithubException, RateLimitExceededException

from integrations.outbound import OutboundError, Permanent, RateLimited, Transient, seconds

LABEL = "hub-incident"
PER_PAGE = 100
SCAN_ISSUES = 300  # how far back `find` looks: markers are for recent, interrupted calls
SCAN_COMMENTS = 1000
TITLE_MAX, BODY_MAX = 256, 65_536  # GitHub's limits; longer is a 422
SECONDARY_WAIT_S = 60.0  # GitHub's advice when a secondary limit names no Retry-After
T = TypeVar("T")


def hidden(marker: str) -> str:
    """The marker as an HTML comment: invisible on GitHub, findable in the raw body."""
    return f"<!-- hub:{marker} -->"


@dataclass(frozen=True)
class RepoAccess:
    """What the token may do in the repository (`hub doctor`)."""

    has_issues: bool
    archived: bool
    push: bool | None  # None: GitHub did not say (the token's permissions are not shown)
    triage: bool | None
    date: str | None  # the answer's Date header


class IssueTracker:
    """Issues in one repository; `for_repo` gives the same client for another one (routing
    rules send incidents to their team's repository)."""

    def __init__(self, token: str, base_url: str, repo: str, timeout: float = 10.0) -> None:
        # lazy (on the client: `get_repo(..., lazy=True)` is deprecated in PyGithub 2.10):
        # repository and issue objects are built without a GET, so each method makes exactly
        # the request it needs (each counts against the shared budget).
        self._gh = Github(
            auth=Auth.Token(token),
            base_url=base_url.rstrip("/"),
            timeout=max(1, math.ceil(timeout)),
            per_page=PER_PAGE,
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
        )
        self._repo = self._gh.get_repo(repo)
        self._name = repo
        self._web = _web_root(base_url)
        self._others: dict[str, IssueTracker] = {repo: self}

    def for_repo(self, repo: str) -> IssueTracker:
        """This client for `repo` (built once, without a request: the client is lazy)."""
        found = self._others.get(repo)
        if found is None:
            found = copy.copy(self)
            found._repo, found._name = self._gh.get_repo(repo), repo
            self._others[repo] = found  # shared: every copy sees the same cache
        return found

    def access(self) -> RepoAccess:
        """One GET of the repository: issues enabled, archived, the token's permissions."""

        def read() -> RepoAccess:
            repo = self._repo
            perms = repo.permissions
            return RepoAccess(
                has_issues=bool(repo.has_issues),
                archived=bool(repo.archived),
                push=None if perms is None else bool(perms.push),
                triage=None if perms is None else bool(perms.triage),
                date=_lower(repo.raw_headers).get("date"),
            )

        return _mapped(read)

    def create(self, title: str, body: str, labels: Sequence[str], *, marker: str) -> int:
        """Open an issue labelled `hub-incident` (and `labels`); its number."""
        text = _with_marker(body, marker)
        wanted = list(dict.fromkeys([LABEL, *labels]))
        issue = _mapped(
            lambda: self._repo.create_issue(title=title[:TITLE_MAX], body=text, labels=wanted)
        )
        return int(issue.number)

    def find(self, marker: str) -> int | None:
        """The newest issue `create` made with `marker`, among the last SCAN_ISSUES."""
        tag = hidden(marker)

        def scan() -> int | None:
            issues = self._repo.get_issues(
                state="all", labels=[LABEL], sort="created", direction="desc"
            )
            return next(
                (i.number for i in islice(issues, SCAN_ISSUES) if tag in (i.body or "")), None
            )

        return _mapped(scan)

    def comment(self, number: int, body: str, *, marker: str) -> None:
        text = _with_marker(body, marker)
        _mapped(lambda: self._repo.get_issue(number).create_comment(text))

    def has_comment(self, number: int, marker: str) -> bool:
        tag = hidden(marker)

        def scan() -> bool:
            comments: Iterable[Any] = islice(
                self._repo.get_issue(number).get_comments(), SCAN_COMMENTS
            )
            return any(tag in (c.body or "") for c in comments)

        return _mapped(scan)

    def close(self, number: int) -> None:
        _mapped(lambda: self._repo.get_issue(number).edit(state="closed", state_reason="completed"))

    def reopen(self, number: int) -> None:
        _mapped(lambda: self._repo.get_issue(number).edit(state="open", state_reason="reopened"))

    def issue_url(self, number: int) -> str:
        """The issue's web page, without a request."""
        return f"{self._web}/{self._name}/issues/{number}"


def _with_marker(body: str, marker: str) -> str:
    tail = f"\n\n{hidden(marker)}"
    return body[: BODY_MAX - len(tail)] + tail  # the marker must survive a long body


def _web_root(base_url: str) -> str:
    """github.com for the public API; for GHES (`https://ghe.example/api/v3`) the same
    host without the API prefix."""
    parts = urlsplit(base_url)
    if (parts.hostname or "").lower() == "api.github.com":
        return "https://github.com"
    path = parts.path.rstrip("/").removesuffix("/api/v3")
    return f"{parts.scheme}://{parts.netloc}{path}"


def _mapped(call: Callable[[], T]) -> T:
    try:
        return call()
    except RateLimitExceededException as exc:
        raise RateLimited(f"GitHub rate limit ({exc.status})", _wait(exc.headers)) from None
    except GithubException as exc:
        raise _classify(exc) from None
    except requests.RequestException as exc:  # timeouts, refused or dropped connections
        raise Transient(f"GitHub: {type(exc).__name__}") from None


def _classify(exc: GithubException) -> OutboundError:
    status, headers = exc.status, _lower(exc.headers)
    if status == 429 or (status == 403 and _is_rate_limit(exc, headers)):
        return RateLimited(f"GitHub answered {status} (rate limited)", _wait(headers))
    if status >= 500 or status == 408:
        return Transient(f"GitHub answered {status}")
    message = exc.data.get("message") if isinstance(exc.data, dict) else None
    # 401 bad credentials, 403 no permission, 404 unknown repo or issue, 410 issues
    # disabled, 422 validation failed: the same request will fail the same way.
    return Permanent(f"GitHub answered {status}: {str(message or 'error')[:200]}")


def _is_rate_limit(exc: GithubException, headers: dict[str, str]) -> bool:
    message = exc.data.get("message", "") if isinstance(exc.data, dict) else ""
    return (
        "retry-after" in headers
        or headers.get("x-ratelimit-remaining") == "0"
        or "rate limit" in str(message).lower()
    )


def _lower(headers: dict[str, Any] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def _wait(raw_headers: dict[str, Any] | None) -> float:
    """Retry-After if given; else, with the primary budget spent, until x-ratelimit-reset;
    else a minute. (Every answer carries x-ratelimit-reset, so it only counts when
    `remaining` is 0: a secondary limit must not wait for the hourly reset.)"""
    headers = _lower(raw_headers)
    if (retry_after := seconds(headers.get("retry-after"))) is not None:
        return retry_after
    reset = seconds(headers.get("x-ratelimit-reset"))
    if headers.get("x-ratelimit-remaining") == "0" and reset is not None:
        return reset - time.time()  # RateLimited makes it at least a second
    return SECONDARY_WAIT_S
