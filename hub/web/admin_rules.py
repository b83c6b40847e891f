"""Routing rules and silences under /admin: what is in force, try a draft on stored events,
reload every process, and maintenance windows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, field_validator

from hub.admin.tokens import Scope
from hub.events.models import utcnow
from hub.rules import silences
from hub.rules.document import PROVIDERS, RulesError
from hub.rules.preview import MAX_EVENTS, parse_span, preview
from hub.rules.preview import Scope as PreviewScope
from hub.rules.silences import SilenceError, SilenceRow
from hub.rules.state import RuleSet, RulesInForce, parse_text, read
from hub.web.auth import Admin, AdminAuth
from hub.web.common import INVALID, admin_router, errors
from hub.web.schemas import ApiError, IsoDateTime

if TYPE_CHECKING:
    from hub.container import Container

RULES_ERROR = "The rules file (or draft) is not valid: `reason` has one line per error"
NO_FILE = "HUB_RULES_FILE is not set (and, for a test, no draft was given)"


class RuleOut(BaseModel):
    name: str
    action: str  # route | incident | suppress
    line: str  # FILE:LINE
    continue_: bool = Field(alias="continue", serialization_alias="continue")


class RulesOut(BaseModel):
    source: str | None = Field(description="HUB_RULES_FILE; null: the built-in catalogue alone")
    hash: str | None
    loaded_at: datetime | None
    defaults: dict[str, Any]
    rules: list[RuleOut]


class RulesTest(BaseModel):
    rules: str | None = Field(None, description="A draft rules file (YAML); null: the file "
                              "on disk as it is now, against the rules in force")  # fmt: skip
    since: str = Field("7d", description="How far back: 7d, 12h, 90m",
                       pattern=r"^\s*(\d+\s*[smhdwSMHDW]\s*)+$")  # fmt: skip
    provider: str | None = None
    type: str | None = None
    limit: int = Field(MAX_EVENTS, ge=1, le=MAX_EVENTS)

    @field_validator("since")
    @classmethod
    def _a_span(cls, value: str) -> str:
        parse_span(value)  # the pattern lets through spans too long for a date: 422 here
        return value


class RuleTally(BaseModel):
    name: str
    action: str
    line: str
    matched: int = Field(description="Events it applied to")
    misses: int = Field(description="Events its `where` could not be evaluated for")


class SideOut(BaseModel):
    incidents: int = Field(description="Incidents that would open (a key opens once while live)")
    suppressed: int
    resolves: int
    slack_posts: dict[str, int] = Field(description="By channel")
    github_issues: dict[str, int] = Field(description="By repository")
    template_errors: int = Field(description="Events whose incident template would raise")


class Difference(BaseModel):
    event_id: str
    kind: str
    proposed: str
    in_force: str


class RulesTestOut(BaseModel):
    source: str | None
    hash: str | None
    since: datetime
    events: int = Field(description="Stored events tried (oldest first)")
    undecidable: int = Field(description="Thin events skipped: deciding them needs Stripe")
    truncated: bool
    rules: list[RuleTally]
    proposed: SideOut
    in_force: SideOut
    changed: int = Field(description="Events the two sides decide differently")
    differences: list[Difference] = Field(description="The first of them")


class SilenceIn(BaseModel):
    match: str = Field(min_length=1, description="CEL over payload, provider, type, incident")
    starts_at: IsoDateTime | None = Field(None, description="Default: now")
    ends_at: IsoDateTime
    reason: str = ""


class SilenceOut(BaseModel):
    id: str
    match: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime
    expired_by: str | None
    state: str  # pending | active | expired


class SilenceList(BaseModel):
    items: list[SilenceOut]


def rules_out(rules: RuleSet) -> RulesOut:
    return RulesOut(
        source=rules.source, hash=rules.hash, loaded_at=rules.loaded_at,
        defaults=rules.defaults.model_dump(),
        rules=[RuleOut.model_validate({"name": r.name, "action": r.spec.action, "line": r.line,
                                       "continue": r.spec.continue_}) for r in rules.rules],
    )  # fmt: skip


def silence_out(row: SilenceRow, now: datetime) -> SilenceOut:
    return SilenceOut(**row.__dict__, state=row.state(now))


def router(container: Container, auth: AdminAuth) -> APIRouter:
    api = admin_router(auth.authenticate)
    reader = [Depends(auth.requires(Scope.READ))]
    as_admin = Depends(auth.requires(Scope.ADMIN))
    state = container.rules

    @api.get("/rules", tags=["rules"], summary="The routing rules in force", dependencies=reader)
    def rules_in_force() -> RulesOut:
        return rules_out(state.current)

    @api.post("/rules/reload", tags=["rules"], summary="Re-read HUB_RULES_FILE everywhere",
              description="Checks the file; if valid, this process uses it now and every other "
              "within seconds (audited with its hash). If not, nothing changes: 422, one line "
              "per error.", responses=errors({409: NO_FILE, 422: RULES_ERROR}))  # fmt: skip
    def reload(admin: Admin = as_admin) -> RulesOut:
        if state.path is None:
            raise ApiError(409, "conflict", "HUB_RULES_FILE is not set: the built-in catalogue "
                           "is in force, and there is no file to reload")  # fmt: skip
        try:
            return rules_out(state.reload(admin.actor))
        except RulesError as exc:
            state.refused(admin.actor, exc)
            raise ApiError(422, "invalid_rules", "\n".join(exc.errors)) from None

    @api.post("/rules/test", tags=["rules"], summary="Try rules on stored events, no effects",
              dependencies=reader, responses=errors({409: NO_FILE, 422: RULES_ERROR}))  # fmt: skip
    def test(request: RulesTest) -> RulesTestOut:
        if request.rules is None and state.path is None:
            raise ApiError(409, "conflict", "no draft given and HUB_RULES_FILE is not set")
        try:
            proposed, span = _proposed(request, state)
        except (RulesError, ValueError) as exc:
            lines = exc.errors if isinstance(exc, RulesError) else [str(exc)]
            raise ApiError(422, "invalid_rules", "\n".join(lines)) from None
        scope = PreviewScope(span, request.provider, request.type, request.limit)
        sides = (proposed, state.current)
        found = preview(container.engine, container.settings, container.catalogue(), sides, scope)
        return RulesTestOut.model_validate(found.as_json())

    _silence_routes(api, container, auth)
    return api


def _proposed(request: RulesTest, state: RulesInForce) -> tuple[RuleSet, timedelta]:
    if request.provider is not None and request.provider not in PROVIDERS:
        raise ValueError(f"unknown provider {request.provider!r}")
    span = parse_span(request.since)
    if request.rules is not None:
        return parse_text(request.rules, "draft"), span
    assert state.path is not None  # checked by the route: 409
    return read(state.path), span


def _silence_routes(api: APIRouter, container: Container, auth: AdminAuth) -> None:
    reader = [Depends(auth.requires(Scope.READ))]
    as_responder = Depends(auth.requires(Scope.INCIDENTS))

    @api.get("/silences", tags=["silences"], summary="Silences (maintenance windows)",
             dependencies=reader)  # fmt: skip
    def list_silences(
        all: bool = Query(False, description="Include expired ones"),
    ) -> SilenceList:
        now = utcnow()
        rows = silences.listed(container.engine, include_expired=all)
        return SilenceList(items=[silence_out(r, now) for r in rows])

    @api.post("/silences", tags=["silences"], status_code=201, summary="Add a silence",
              responses=errors({422: INVALID}))  # fmt: skip
    def add_silence(request: SilenceIn, admin: Admin = as_responder) -> SilenceOut:
        try:
            row = silences.add(container.engine, admin.actor, request.match, request.ends_at,
                               starts_at=request.starts_at, reason=request.reason)  # fmt: skip
        except SilenceError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        return silence_out(row, utcnow())

    @api.delete("/silences/{silence_id}", tags=["silences"], summary="Expire a silence now",
                description="Incidents it held that are still live are posted at once.",
                responses=errors({404: "No such silence"}))  # fmt: skip
    def expire_silence(silence_id: str, admin: Admin = as_responder) -> SilenceOut:
        try:
            row = silences.expire(container.engine, container.events, silence_id, admin.actor)
        except SilenceError as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        return silence_out(row, utcnow())
