"""State behind `GitHubServer`: repositories, issues, comments, the rate budget, and the JSON
shapes PyGithub parses (only fields with the types GitHub really sends)."""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DOCS = "https://docs.github.com/rest"
STATE_REASONS = {"completed", "not_planned", "reopened", "duplicate", None}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class StoredIssue:
    number: int
    title: str
    body: str | None
    state: str
    state_reason: str | None
    labels: tuple[str, ...]
    comments: tuple[str, ...]


@dataclass
class CommentState:
    id: int
    body: str
    created_at: float


@dataclass
class IssueState:
    number: int
    id: int
    title: str
    body: str | None
    labels: list[str]
    created_at: float
    updated_at: float
    state: str = "open"
    state_reason: str | None = None
    closed_at: float | None = None
    comments: list[CommentState] = field(default_factory=list)

    def snapshot(self) -> StoredIssue:
        return StoredIssue(
            self.number,
            self.title,
            self.body,
            self.state,
            self.state_reason,
            tuple(self.labels),
            tuple(c.body for c in self.comments),
        )


@dataclass
class RepoState:
    id: int
    owner: str
    name: str
    issues: dict[int, IssueState] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


class Budget:
    """GitHub's primary limit: `limit` requests per window, refilled at `reset` (epoch s)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.reset = math.ceil(time.time()) + 3600

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def take(self, now: float) -> bool:
        if now >= self.reset:
            self.used, self.reset = 0, math.ceil(now) + 3600
        if self.remaining == 0:
            return False
        self.used += 1
        return True

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset),
            "x-ratelimit-used": str(self.used),
            "x-ratelimit-resource": "core",
        }


def validation_failed(
    resource: str, field_name: str, code: str = "missing_field"
) -> dict[str, Any]:
    return {
        "message": "Validation Failed",
        "errors": [{"resource": resource, "code": code, "field": field_name}],
        "documentation_url": DOCS,
    }


class GitHubStore:
    def __init__(self, login: str) -> None:
        self.login = login
        self.repos: dict[str, RepoState] = {}
        self._ids = 1000

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def add_repo(self, full_name: str) -> RepoState:
        owner, name = full_name.split("/")
        repo = RepoState(self.next_id(), owner, name)
        self.repos.setdefault(full_name.lower(), repo)
        return self.repos[full_name.lower()]

    def repo(self, owner: str, name: str) -> RepoState | None:
        return self.repos.get(f"{owner}/{name}".lower())  # GitHub matches names case-blind

    def create_issue(
        self, repo: RepoState, title: str, body: str | None, labels: list[str]
    ) -> IssueState:
        now = time.time()
        number = len(repo.issues) + 1
        issue = IssueState(number, self.next_id(), title, body, labels, now, now)
        repo.issues[number] = issue
        return issue

    def edit_issue(self, issue: IssueState, fields: dict[str, Any]) -> dict[str, Any] | None:
        """Apply a PATCH; returns a 422 body if a field is invalid, having changed nothing."""
        state = fields.get("state", issue.state)
        if state not in {"open", "closed"}:
            return validation_failed("Issue", "state", "invalid")
        if fields.get("state_reason") not in STATE_REASONS:
            return validation_failed("Issue", "state_reason", "invalid")
        if "title" in fields and not fields["title"]:
            return validation_failed("Issue", "title")
        for key in ("title", "body"):
            if key in fields:
                setattr(issue, key, fields[key])
        if "labels" in fields:
            issue.labels = label_names(fields["labels"])
        now = time.time()
        if state == "closed" and issue.state == "open":
            issue.closed_at = now
            issue.state_reason = fields.get("state_reason") or "completed"
        elif state == "open" and issue.state == "closed":
            issue.closed_at = None
            issue.state_reason = "reopened"
        elif "state_reason" in fields:
            issue.state_reason = fields["state_reason"]
        issue.state = state
        issue.updated_at = now
        return None

    def add_comment(self, issue: IssueState, body: str) -> CommentState:
        comment = CommentState(self.next_id(), body, time.time())
        issue.comments.append(comment)
        issue.updated_at = comment.created_at
        return comment

    # JSON as GitHub renders it; `base` is the URL prefix the client used

    def user_json(self, base: str) -> dict[str, Any]:
        return {
            "login": self.login,
            "id": 1,
            "node_id": "U_fake1",
            "type": "Bot" if self.login.endswith("[bot]") else "User",
            "site_admin": False,
            "url": f"{base}/users/{self.login}",
            "html_url": f"https://github.com/{self.login}",
        }

    def repo_json(self, base: str, repo: RepoState) -> dict[str, Any]:
        url = f"{base}/repos/{repo.full_name}"
        return {
            "id": repo.id,
            "node_id": f"R_fake{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": {
                **self.user_json(base),
                "login": repo.owner,
                "url": f"{base}/users/{repo.owner}",
            },
            "private": True,
            "html_url": f"https://github.com/{repo.full_name}",
            "url": url,
            "issues_url": f"{url}/issues{{/number}}",
            "default_branch": "main",
            "has_issues": True,
            "archived": False,
            # The token's own permissions, as GitHub shows them to an authenticated caller.
            "permissions": {
                "admin": False,
                "maintain": False,
                "push": True,
                "triage": True,
                "pull": True,
            },
            "open_issues_count": sum(i.state == "open" for i in repo.issues.values()),
            "created_at": iso(0),
            "updated_at": iso(time.time()),
        }

    def issue_json(self, base: str, repo: RepoState, issue: IssueState) -> dict[str, Any]:
        url = f"{base}/repos/{repo.full_name}/issues/{issue.number}"
        return {
            "id": issue.id,
            "node_id": f"I_fake{issue.id}",
            "url": url,
            "repository_url": f"{base}/repos/{repo.full_name}",
            "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments",
            "events_url": f"{url}/events",
            "html_url": f"https://github.com/{repo.full_name}/issues/{issue.number}",
            "number": issue.number,
            "state": issue.state,
            "state_reason": issue.state_reason,
            "title": issue.title,
            "body": issue.body,
            "user": self.user_json(base),
            "labels": [self.label_json(base, repo, name) for name in issue.labels],
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "comments": len(issue.comments),
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": None if issue.closed_at is None else iso(issue.closed_at),
            "author_association": "OWNER",
        }

    @staticmethod
    def label_json(base: str, repo: RepoState, name: str) -> dict[str, Any]:
        return {
            "id": zlib.crc32(f"{repo.id}/{name}".encode()),
            "node_id": f"LA_fake{name}",
            "url": f"{base}/repos/{repo.full_name}/labels/{name}",
            "name": name,
            "color": "ededed",
            "default": False,
            "description": None,
        }

    def comment_json(
        self, base: str, repo: RepoState, issue: IssueState, c: CommentState
    ) -> dict[str, Any]:
        return {
            "id": c.id,
            "node_id": f"IC_fake{c.id}",
            "url": f"{base}/repos/{repo.full_name}/issues/comments/{c.id}",
            "html_url": f"https://github.com/{repo.full_name}/issues/{issue.number}#issuecomment-{c.id}",
            "issue_url": f"{base}/repos/{repo.full_name}/issues/{issue.number}",
            "body": c.body,
            "user": self.user_json(base),
            "created_at": iso(c.created_at),
            "updated_at": iso(c.created_at),
            "author_association": "OWNER",
        }


def label_names(raw: Any) -> list[str]:
    """GitHub takes label names or objects with a name; duplicates collapse."""
    names: list[str] = []
    for item in raw or []:
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str) and name not in names:
            names.append(name)
    return names
