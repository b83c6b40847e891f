"""Shapes of the admin API's replay, incident, audit and token endpoints (see schemas.py for
events). Field names follow DESIGN.md section 2: add fields, never rename."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, StrictBool

from hub.admin.tokens import Scope
from hub.events.models import Status
from hub.events.queries import MAX_LIMIT
from hub.web.schemas import IsoDateTime, UTCDateTime

if TYPE_CHECKING:
    from hub.admin.replay import BulkReplay
    from hub.admin.tokens import TokenInfo
    from hub.incidents.queries import IncidentDetail, IncidentRow

Severity = Literal["sev1", "sev2", "sev3", "sev4"]
IncidentState = Literal["open", "acknowledged", "resolved"]


class ReplayOneOut(BaseModel):
    event_id: str
    status: Status = Field(description="`queued`, or the state of an event already on its way.")
    replayed: bool = Field(description="False when the event was already queued or processing.")


class ReplayRequest(BaseModel):
    provider: str | None = None
    type: str | None = None
    status: Status | None = Field(None, description="Usually `failed`.")
    since: IsoDateTime | None = Field(None, description="Received at or after (ISO 8601, UTC).")
    until: IsoDateTime | None = Field(None, description="Received before (ISO 8601, UTC).")
    # Strict: `"dry_run": 0` or `"no"` would otherwise pass as false and replay for real.
    dry_run: StrictBool = Field(False, description="Only count what matches.")


class ReplayOut(BaseModel):
    matched: int = Field(description="Events the filter matches.")
    replayed: int = Field(description="Events queued again (0 for a dry run).")
    skipped: int = Field(0, description="Matched but already on their way, or redacted.")
    replay_id: str | None = Field(None, description="For `GET /admin/replays/{id}`.")
    paced_until: UTCDateTime | None = Field(
        None, description="When the last batch is handed to the workers."
    )


class ReplayProgressOut(BaseModel):
    replay_id: str
    actor: str
    filter: dict[str, Any]
    matched: int
    replayed: int
    remaining: int = Field(description="Replayed events not yet settled.")
    by_status: dict[str, int]
    created_at: UTCDateTime
    paced_until: UTCDateTime
    done: bool


class ReplayCancelOut(BaseModel):
    replay_id: str
    cancelled: int = Field(description="Events put back to their status before the replay.")


class SlackRef(BaseModel):
    channel: str
    ts: str


class IncidentOut(BaseModel):
    id: str
    key: str = Field(description="The grouping key: one live incident per key.")
    title: str
    severity: str
    status: IncidentState
    summary: str
    occurrences: int
    first_seen: UTCDateTime
    last_seen: UTCDateTime
    acknowledged_by: str | None
    resolved_by: str | None
    slack: SlackRef | None = Field(description="The incident's one Slack message, once posted.")
    github_issue: int | None
    links: list[dict[str, str]]
    channels: list[str] = Field(
        default_factory=list,
        description="The Slack channels it is posted to (routing rules, else the default); "
        "the first holds `slack`. Empty for incidents opened before routing rules.",
    )
    github_repo: str | None = Field(None, description="Where its tracking issue is.")
    rule: str | None = Field(None, description="The routing rules that decided it; null: "
                             "the built-in catalogue alone.")  # fmt: skip
    silenced_until: UTCDateTime | None = Field(
        None, description="Opened under a silence: nothing is posted before this."
    )


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    next_cursor: str | None


class TimelineOut(BaseModel):
    at: UTCDateTime
    actor: str
    action: str
    detail: str


class IncidentDetailOut(IncidentOut):
    timeline: list[TimelineOut] = Field(description="Every change, oldest first.")
    events: list[str] = Field(description="Ids of the events that fed it (newest 100).")


class IncidentChange(BaseModel):
    note: str = Field("", max_length=500, description="Shown in the Slack thread and timeline.")


class IncidentChangeOut(BaseModel):
    incident: IncidentDetailOut
    message: str = Field(description="What changed, as the Slack thread shows it.")


class AuditOut(BaseModel):
    id: int
    at: UTCDateTime
    actor: str = Field(description="A token's name (`env-token-N` for HUB_ADMIN_TOKENS).")
    action: str
    target: str
    detail: dict[str, Any]


class AuditQuery(BaseModel):
    """Query parameters of `GET /admin/audit`."""

    actor: str | None = None
    action: str | None = Field(None, description="e.g. `replay.start`, `incident.ack`.")
    since: IsoDateTime | None = None
    until: IsoDateTime | None = None
    limit: int = Field(100, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None


class TokenRequest(BaseModel):
    # The rule TokenStore.create enforces (besides refusing `env-token-N`), so /docs shows it.
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    scopes: list[Scope] = Field(min_length=1, description="`admin` implies every scope.")


class TokenOut(BaseModel):
    name: str
    prefix: str = Field(description="The first characters, to tell tokens apart.")
    scopes: list[Scope]
    created_at: UTCDateTime
    created_by: str
    last_used_at: UTCDateTime | None
    revoked_at: UTCDateTime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only its digest is stored.")


class TokenList(BaseModel):
    items: list[TokenOut]


class RetentionRequest(BaseModel):
    dry_run: StrictBool = False


class RetentionOut(BaseModel):
    processed_redacted: int = Field(description="Processed or ignored events emptied.")
    failed_redacted: int
    dry_run: bool


class RejectionOut(BaseModel):
    id: int
    at: UTCDateTime
    provider: str = Field(description="`unknown` for a path with no endpoint.")
    endpoint: str = Field(description="The path under /webhooks/ (the metrics' `endpoint`).")
    status: int = Field(description="The HTTP status the sender got.")
    error: str = Field(
        description="The answer's `error`, the same word as the metric's `outcome`: "
        "`unauthorized`, `bad_request`, `too_large`, `unsupported_media_type`, "
        "`method_not_allowed`, `not_found`, `rate_limited`, `refused`."
    )
    reason: str = Field(description="What the sender was told.")
    client: str = Field(description="The client address (as forwarded by a proxy).")
    count: int = Field(
        description="Refusals this row stands for: 1, or more for a summary of those the "
        "log held back (at most 10 lines per endpoint and error per 10 s)."
    )


class RejectionQuery(BaseModel):
    """Query parameters of `GET /admin/rejections`."""

    provider: str | None = None
    error: str | None = Field(None, description="e.g. `unauthorized`.")
    since: IsoDateTime | None = None
    until: IsoDateTime | None = None
    limit: int = Field(100, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")


class RejectionPage(BaseModel):
    items: list[RejectionOut]
    next_cursor: str | None


# Rows as the API shows them, shared by the routers and `hub ... --json` (hub/cli/json_out.py).


def incident_out(row: IncidentRow) -> IncidentOut:
    slack = None
    if row.slack_channel and row.slack_ts:
        slack = SlackRef(channel=row.slack_channel, ts=row.slack_ts)
    return IncidentOut(
        id=row.id,
        key=row.key,
        title=row.title,
        severity=row.severity,
        status=row.status,
        summary=row.summary,
        occurrences=row.occurrences,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        acknowledged_by=row.acknowledged_by,
        resolved_by=row.resolved_by,
        slack=slack,
        github_issue=row.github_issue,
        links=row.links,
        channels=row.channels,
        github_repo=row.github_repo,
        rule=row.rule,
        silenced_until=row.silenced_until,
    )


def incident_detail_out(detail: IncidentDetail) -> IncidentDetailOut:
    timeline = [
        TimelineOut(at=t.at, actor=t.actor, action=t.action, detail=t.detail)
        for t in detail.timeline
    ]
    return IncidentDetailOut(
        **incident_out(detail.incident).model_dump(), timeline=timeline, events=detail.event_ids
    )


def token_out(info: TokenInfo) -> TokenOut:
    return TokenOut(
        name=info.name,
        prefix=info.prefix,
        scopes=sorted(info.scopes),
        created_at=info.created_at,
        created_by=info.created_by,
        last_used_at=info.last_used_at,
        revoked_at=info.revoked_at,
    )


def replay_out(result: BulkReplay) -> ReplayOut:
    """A bulk replay's answer, as the API and `hub replay --json` give it."""
    return ReplayOut(
        matched=result.matched,
        replayed=result.replayed,
        skipped=result.skipped,
        replay_id=result.replay_id,
        paced_until=result.paced_until,
    )
