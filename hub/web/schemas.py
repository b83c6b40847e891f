"""The admin API's request and response shapes, as they appear in the OpenAPI at /docs.

Field names and nesting are a contract (DESIGN.md section 2): add fields, never rename."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from hub.events.models import Status, as_utc
from hub.events.queries import MAX_LIMIT


def _iso_utc(value: datetime) -> str:
    # "+00:00" rather than pydantic's "Z": every ISO 8601 parser, old ones included, reads it.
    return as_utc(value).isoformat()


UTCDateTime = Annotated[
    datetime,
    PlainSerializer(_iso_utc, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _not_a_number(value: object) -> object:
    # pydantic would read a number, or a string of digits, as Unix time: `since=20260131`
    # would silently mean 1970-08-23. The API takes ISO 8601, as its schema says.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("must be an ISO 8601 date-time such as 2026-01-31T12:00:00Z")
    return value


def _utc_representable(value: datetime) -> datetime:
    # 0001-01-01T00:00:00+00:01 parses, but is before year 1 in UTC, where queries compare.
    try:
        as_utc(value)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None
    return value


# A date-time the caller sends (query or body): ISO 8601 only, and within range in UTC.
IsoDateTime = Annotated[
    datetime, BeforeValidator(_not_a_number), AfterValidator(_utc_representable)
]


class ErrorOut(BaseModel):
    error: str = Field(description="A stable machine-readable code, e.g. `not_found`.")
    reason: str = Field(description="What went wrong, for a person to act on.")


class ApiError(HTTPException):
    """An error answered as `ErrorOut`. The admin router's route class renders it flat; raised
    anywhere else it still carries the right status, inside FastAPI's `{"detail": ...}`."""

    def __init__(
        self, status_code: int, error: str, reason: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status_code, {"error": error, "reason": reason}, headers)
        self.error = error
        self.reason = reason

    def response(self) -> JSONResponse:
        body = ErrorOut(error=self.error, reason=self.reason).model_dump()
        return JSONResponse(body, status_code=self.status_code, headers=self.headers)


class EventQuery(BaseModel):
    """Query parameters of `GET /admin/events`."""

    provider: str | None = Field(None, description="`stripe`, `github` or `slack`.")
    type: str | None = Field(None, description="Event type, e.g. `workflow_run.completed`.")
    status: Status | None = None
    since: IsoDateTime | None = Field(
        None, description="ISO 8601; received at or after. No offset means UTC."
    )
    until: IsoDateTime | None = Field(
        None, description="ISO 8601; received before. No offset means UTC."
    )
    q: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Text in the raw body, byte for byte (case-sensitive).",
    )
    contains: str | None = Field(
        None,
        min_length=2,
        max_length=2000,
        description="JSON the decoded payload contains, as PostgreSQL's `@>`: "
        '`{"data":{"object":{"customer":"cus_123"}}}`. With `q` or `contains`, one page reads '
        "at most 2,000 events; `next_cursor` then continues below the last one read.",
    )
    limit: int = Field(50, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")


class EventSummary(BaseModel):
    id: str = Field(description="`evt_` + a ULID: ids sort by time received.")
    provider: str
    type: str
    delivery_id: str = Field(description="The sender's own delivery id; unique per provider.")
    status: Status
    received_at: UTCDateTime
    updated_at: UTCDateTime
    runs: int = Field(description="How many times workers have taken the event.")
    last_error: str | None
    redacted_at: UTCDateTime | None = Field(
        None, description="When retention emptied the body; the metadata stays."
    )


class AttemptOut(BaseModel):
    workflow: str
    started_at: UTCDateTime
    finished_at: UTCDateTime | None
    outcome: str = Field(
        description="`ok`, `error`, `suppressed` (a routing rule kept it from raising "
        "anything), or `stale`: the event was older than what its incident "
        "already reflected (the provider delivered it late, or it was replayed), so it "
        "changed nothing; `unfetched`: a Stripe thin event whose object could not be fetched "
        "(no HUB_STRIPE_API_KEY, or Stripe refused), so it changed nothing."
    )
    error: str | None
    traceback: str | None
    detail: str | None = Field(
        None,
        description="For `stale`: what had superseded the event (its event id and line); "
        "for `unfetched`: why; for `suppressed`: the rule, and what it kept from being raised.",
    )
    rule: str | None = Field(
        None,
        description="The routing rules (HUB_RULES_FILE) that decided this run, comma-separated "
        "when `continue` let several apply; null: the built-in catalogue alone.",
    )


class EventDetail(EventSummary):
    headers: dict[str, str] = Field(description="The request headers kept; never signatures.")
    body: str = Field(description="The raw body exactly as received, per `body_encoding`.")
    body_encoding: Literal["utf-8", "base64"] = Field(
        description="`base64` only when the body is not valid UTF-8."
    )
    attempts: list[AttemptOut] = Field(description="Every workflow run, oldest first.")
    rule: str | None = Field(
        None,
        description="Which routing rules decided it (its latest run); null: the built-in "
        "catalogue alone, or no run yet.",
    )


class EventPage(BaseModel):
    items: list[EventSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class Stats(BaseModel):
    by_status: dict[str, int] = Field(description="Every status, 0 when none.")
    by_provider: dict[str, int]
