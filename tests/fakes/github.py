"""A local GitHub REST API for tests: `Github(auth=Auth.Token(token), base_url=gh.url,
seconds_between_requests=None, seconds_between_writes=None)`; `gh.api_url` (`.../api/v3`, the
Enterprise form) works too, and URLs in answers reuse whichever prefix the request used.

Served: GET /user, GET /rate_limit (free), GET /repos/{o}/{r}, GET|POST /repos/{o}/{r}/issues
(state, labels, sort, direction, per_page, page; Link headers), GET|PATCH .../issues/{n},
GET|POST .../issues/{n}/comments. Every answer carries x-ratelimit-limit/remaining/reset/used.

What PyGithub 2.10 does with each answer. `retry=None` raises at once. The default,
`GithubRetry()`, is urllib3's Retry(total=10, no backoff) on 403 and 5xx for GET and POST
(and PUT/DELETE) but **not PATCH**, plus urllib3's own retry of 413/429/503 with Retry-After:
- missing token: 401 "Requires authentication" -> GithubException(401); wrong token: 401
  "Bad credentials" -> BadCredentialsException. Unknown repo or issue -> UnknownObjectException.
- `fail_next(status=5xx)`: GET/POST retried at once, up to 10 times, then
  `requests.exceptions.RetryError` (not a GithubException). A POST whose answer was lost
  (`applied=True`) is sent again: a duplicate issue or comment. PATCH: GithubException(5xx).
- `exhaust_rate_limit()` (403, remaining 0, "API rate limit exceeded ..."): sleeps until
  x-ratelimit-reset + 1 s, however far off, then retries; `GithubRetry(max_rate_limit_wait=s)`
  raises RateLimitExceededExceedsMaxWait instead; PATCH or `retry=None` raises
  RateLimitExceededException. With `status=429` it is a plain GithubException(429), always.
- `secondary_rate_limit(status=403)`: with Retry-After, GET/POST sleep it and retry (10 times,
  then RetryError); without, they sleep `secondary_rate_wait` (60 s). PATCH or `retry=None`:
  RateLimitExceededException. `status=429` with Retry-After: GET/POST sleep and retry; PATCH or
  `retry=None`: GithubException(429), never RateLimitExceededException.
- `set_down("close")`: requests.exceptions.ConnectionError (after retries for GET/POST);
  `set_down("503")`: GithubException(503), or RetryError after 10 instant retries.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from tests.fakes.github_store import (
    DOCS,
    Budget,
    GitHubStore,
    IssueState,
    RepoState,
    StoredIssue,
    label_names,
    validation_failed,
)
from tests.fakes.http import Call, FakeServer, Reply

_REPO_PATH = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)?$")
_ISSUE_PATH = re.compile(r"^/issues/(?P<number>\d+)(?P<comments>/comments)?$")
PRIMARY_MESSAGE = (
    "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, "
    "please include the request ID FAKE:0000 and timestamp {when} UTC."
)
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID FAKE:0000."
)


def _message(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply.json(status, {"message": message, "documentation_url": DOCS}, headers)


@dataclass(frozen=True)
class _Fault:
    status: int
    applied: bool
    method: str | None

    def reply(self) -> Reply:
        if self.status == 500:
            return _message(500, "Server Error")
        # Proxies in front of GitHub answer 502/503/504 with a non-JSON body.
        return Reply.text(self.status, "Bad Gateway" if self.status == 502 else "Unavailable")


class GitHubServer(FakeServer):
    def __init__(
        self,
        token: str = "ghp_test_token",
        *,
        repos: Iterable[str] = ("acme/api",),
        login: str = "hub-bot",
        rate_limit: int = 5000,
    ) -> None:
        self.token = token
        self._store = GitHubStore(login)
        for full_name in repos:
            self._store.add_repo(full_name)
        self._budget = Budget(rate_limit)
        self._primary_status = 403
        self._secondary: deque[tuple[int, int | None]] = deque()
        self._faults: deque[_Fault] = deque()
        self._created = 0
        self._routes: dict[tuple[str, str], Callable[[_Request], Reply]] = {
            ("GET", "repo"): self._get_repo,
            ("GET", "issues"): self._list_issues,
            ("POST", "issues"): self._create_issue,
            ("GET", "issue"): self._get_issue,
            ("PATCH", "issue"): self._edit_issue,
            ("GET", "comments"): self._list_comments,
            ("POST", "comments"): self._comment,
        }
        super().__init__()

    @property
    def api_url(self) -> str:
        """The GitHub Enterprise style base; `url` works as well."""
        return f"{self.url}/api/v3"

    # knobs

    def add_repo(self, full_name: str) -> None:
        with self.lock:
            self._store.add_repo(full_name)

    def set_rate_limit(self, limit: int, *, used: int = 0, reset_in_s: float = 3600) -> None:
        with self.lock:
            self._budget.limit, self._budget.used = limit, used
            self._budget.reset = math.ceil(time.time() + reset_in_s)

    def exhaust_rate_limit(self, reset_in_s: float = 60, *, status: int = 403) -> None:
        """Spend the primary budget: requests answer `status` (GitHub sends 403, sometimes
        429) with `x-ratelimit-remaining: 0` until the reset, `reset_in_s` from now."""
        with self.lock:
            self._budget.used = self._budget.limit
            self._budget.reset = math.ceil(time.time() + reset_in_s)
            self._primary_status = status

    def secondary_rate_limit(
        self, n: int = 1, *, status: int = 403, retry_after_s: int | None = 60
    ) -> None:
        """The next `n` requests hit a secondary limit, with `Retry-After` unless None."""
        with self.lock:
            self._secondary.extend([(status, retry_after_s)] * n)

    def fail_next(
        self, n: int = 1, *, status: int = 500, applied: bool = False, method: str | None = None
    ) -> None:
        """The next `n` requests (of `method` if given) answer `status`; `applied=True` lets
        the request take effect first, as when a gateway loses GitHub's answer."""
        with self.lock:
            self._faults.extend([_Fault(status, applied, method)] * n)

    # inspection

    def issues(self, repo: str) -> list[StoredIssue]:
        with self.lock:
            state = self._store.repos.get(repo.lower())
            return [] if state is None else [i.snapshot() for i in state.issues.values()]

    @property
    def created(self) -> int:
        with self.lock:
            return self._created

    @property
    def rate_remaining(self) -> int:
        with self.lock:
            return self._budget.remaining

    # dispatch

    def handle(self, call: Call) -> Reply:
        prefix = "/api/v3" if call.path.startswith("/api/v3/") else ""
        reply = self._guarded(call, call.path.removeprefix(prefix), self.url + prefix)
        reply.headers.update(self._budget.headers())
        reply.headers["x-github-api-version-selected"] = "2022-11-28"
        return reply

    def _guarded(self, call: Call, path: str, base: str) -> Reply:
        scheme, _, token = call.headers.get("authorization", "").partition(" ")
        if not scheme:
            return _message(401, "Requires authentication")
        if scheme.lower() not in {"token", "bearer"} or token.strip() != self.token:
            return _message(401, "Bad credentials")
        if path == "/rate_limit":  # free, as on GitHub
            core = {k: int(v) for k, v in self._budget.headers().items() if v.isdigit()}
            rate = {key.removeprefix("x-ratelimit-"): value for key, value in core.items()}
            return Reply.json(200, {"resources": {"core": rate}, "rate": rate})
        if not self._budget.take(time.time()):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
            return _message(self._primary_status, PRIMARY_MESSAGE.format(when=when))
        if self._secondary:
            status, retry_after = self._secondary.popleft()
            headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
            return _message(status, SECONDARY_MESSAGE, headers)
        fault = self._take_fault(call.method)
        if fault is not None and not fault.applied:
            return fault.reply()
        reply = self._route(call, path, base)
        return fault.reply() if fault is not None else reply

    def _take_fault(self, method: str) -> _Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.method in (None, method):
                del self._faults[i]
                return fault
        return None

    def _route(self, call: Call, path: str, base: str) -> Reply:
        if path == "/user" and call.method == "GET":
            return Reply.json(200, self._store.user_json(base))
        m = _REPO_PATH.match(path)
        repo = self._store.repo(m["owner"], m["name"]) if m else None
        if m is None or repo is None:
            return _message(404, "Not Found")
        rest, issue, kind = m["rest"] or "", None, ""
        if rest in ("", "/", "/issues"):
            kind = rest.strip("/") or "repo"
        elif im := _ISSUE_PATH.match(rest):
            issue = repo.issues.get(int(im["number"]))
            kind = "comments" if im["comments"] else "issue"
        route = self._routes.get((call.method, kind))
        if route is None or (kind in ("issue", "comments") and issue is None):
            return _message(404, "Not Found")
        return route(_Request(call, path, base, repo, issue))

    def _get_repo(self, r: _Request) -> Reply:
        return Reply.json(200, self._store.repo_json(r.base, r.repo))

    def _get_issue(self, r: _Request) -> Reply:
        return Reply.json(200, self._store.issue_json(r.base, r.repo, r.issue))

    def _create_issue(self, r: _Request) -> Reply:
        body: Any = r.call.body
        if not isinstance(body, dict):
            return _message(400, "Problems parsing JSON")
        if not isinstance(body.get("title"), str) or not body["title"]:
            return Reply.json(422, validation_failed("Issue", "title"))
        labels = label_names(body.get("labels"))
        issue = self._store.create_issue(r.repo, body["title"], body.get("body"), labels)
        self._created += 1
        out = self._store.issue_json(r.base, r.repo, issue)
        return Reply.json(201, out, {"Location": out["url"]})

    def _edit_issue(self, r: _Request) -> Reply:
        if not isinstance(r.call.body, dict):
            return _message(400, "Problems parsing JSON")
        error = self._store.edit_issue(r.issue, r.call.body)
        if error is not None:
            return Reply.json(422, error)
        return Reply.json(200, self._store.issue_json(r.base, r.repo, r.issue))

    def _comment(self, r: _Request) -> Reply:
        body: Any = r.call.body
        if not isinstance(body, dict):
            return _message(400, "Problems parsing JSON")
        if not isinstance(body.get("body"), str) or not body["body"]:
            return Reply.json(422, validation_failed("IssueComment", "body"))
        comment = self._store.add_comment(r.issue, body["body"])
        out = self._store.comment_json(r.base, r.repo, r.issue, comment)
        return Reply.json(201, out, {"Location": out["url"]})

    def _list_comments(self, r: _Request) -> Reply:
        store, issue = self._store, r.issue
        return r.paged([store.comment_json(r.base, r.repo, issue, c) for c in issue.comments])

    def _list_issues(self, r: _Request) -> Reply:
        q = r.call.query
        state = q.get("state", "open")
        wanted = {name.strip().lower() for name in q.get("labels", "").split(",") if name.strip()}
        chosen = [
            i
            for i in r.repo.issues.values()
            if state in ("all", i.state) and wanted <= {label.lower() for label in i.labels}
        ]
        field = "updated_at" if q.get("sort") == "updated" else "created_at"
        chosen.sort(
            key=lambda i: (getattr(i, field), i.number), reverse=q.get("direction") != "asc"
        )
        return r.paged([self._store.issue_json(r.base, r.repo, i) for i in chosen])


@dataclass
class _Request:
    call: Call
    path: str  # without the /api/v3 prefix
    base: str  # scheme, host and prefix the client used, for the URLs in answers
    repo: RepoState
    maybe_issue: IssueState | None

    @property
    def issue(self) -> IssueState:
        assert self.maybe_issue is not None, "routed to an issue handler without an issue"
        return self.maybe_issue

    def paged(self, items: list[dict[str, Any]]) -> Reply:
        """One page, with the Link header GitHub sends when there is more than one page."""
        query = self.call.query
        try:
            per_page = max(1, min(int(query.get("per_page", 30)), 100))
            page = max(1, int(query.get("page", 1)))
        except ValueError:
            return _message(422, "Invalid pagination parameters")
        last = max(1, math.ceil(len(items) / per_page))
        links: dict[str, int] = {}
        if page < last:
            links |= {"next": page + 1, "last": last}
        if page > 1:
            links |= {"prev": page - 1, "first": 1}
        headers = {}
        if links:
            headers["Link"] = ", ".join(
                f'<{self.base}{self.path}?{urlencode({**query, "page": n})}>; rel="{rel}"'
                for rel, n in links.items()
            )
        start = (page - 1) * per_page
        return Reply.json(200, items[start : start + per_page], headers)
