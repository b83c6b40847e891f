"""Incidents under /admin: list, read with the timeline, and acknowledge or resolve exactly as
the Slack buttons do (the message is updated in place and its thread names the admin)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Query

from hub.admin import audit
from hub.admin.tokens import Scope
from hub.events.queries import MAX_LIMIT
from hub.incidents.changes import VERBS, StatusChange, change_status
from hub.incidents.queries import (
    IncidentDetail,
    IncidentFilter,
    get_incident,
    list_incidents,
)
from hub.web.admin_schemas import (
    IncidentChange,
    IncidentChangeOut,
    IncidentDetailOut,
    IncidentPage,
    IncidentState,
    Severity,
    incident_detail_out,
    incident_out,
)
from hub.web.auth import Admin, AdminAuth
from hub.web.common import INVALID, admin_router, errors
from hub.web.schemas import ApiError, IsoDateTime

if TYPE_CHECKING:
    from hub.container import Container


def router(container: Container, auth: AdminAuth) -> APIRouter:
    engine = container.engine
    api = admin_router(auth.authenticate, "/admin/incidents", tags=["incidents"])
    reader = [Depends(auth.requires(Scope.READ))]
    # A default, not an Annotated alias: FastAPI resolves annotations in module globals.
    as_responder = Depends(auth.requires(Scope.INCIDENTS))
    changed = errors({404: "No such incident", 409: "Not in a state this change applies to"})

    @api.get("", summary="List incidents, newest first", dependencies=reader,
             responses=errors({422: INVALID}))  # fmt: skip
    def incidents(
        status: IncidentState | None = None,
        severity: Severity | None = None,
        since: Annotated[IsoDateTime | None, Query(description="Last seen at or after")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        cursor: Annotated[str | None, Query(description="`next_cursor` of the last page")] = None,
    ) -> IncidentPage:
        rows = list_incidents(engine, IncidentFilter(status, severity, since), cursor, limit + 1)
        more = len(rows) > limit
        items = [incident_out(r) for r in rows[:limit]]
        return IncidentPage(items=items, next_cursor=items[-1].id if more else None)

    @api.get("/{incident_id}", summary="One incident with its timeline", dependencies=reader,
             responses=errors({404: "No such incident"}))  # fmt: skip
    def incident(incident_id: str) -> IncidentDetailOut:
        return incident_detail_out(_found(get_incident(engine, incident_id), incident_id))

    def change(incident_id: str, verb: str, admin: Admin, note: str) -> IncidentChangeOut:
        return apply_change(container, incident_id, verb, admin.actor, note)

    @api.post("/{incident_id}/ack", summary="Acknowledge, as the Slack button does",
              responses=changed)  # fmt: skip
    def acknowledge(
        incident_id: str, body: IncidentChange | None = None, admin: Admin = as_responder
    ) -> IncidentChangeOut:
        return change(incident_id, "ack", admin, body.note if body else "")

    @api.post("/{incident_id}/resolve", summary="Resolve, as the Slack button does",
              responses=changed)  # fmt: skip
    def resolve(
        incident_id: str, body: IncidentChange | None = None, admin: Admin = as_responder
    ) -> IncidentChangeOut:
        return change(incident_id, "resolve", admin, body.note if body else "")

    @api.post("/{incident_id}/reopen", summary="Reopen a resolved incident",
              responses=changed)  # fmt: skip
    def reopen(
        incident_id: str, body: IncidentChange | None = None, admin: Admin = as_responder
    ) -> IncidentChangeOut:
        return change(incident_id, "reopen", admin, body.note if body else "")

    return api


def apply_change(
    container: Container, incident_id: str, verb: str, actor: str, note: str
) -> IncidentChangeOut:
    """Acknowledge, resolve or reopen as the Slack buttons do, for the API and the console:
    ApiError 404 for no such incident, 409 when the change does not apply."""
    engine = container.engine
    # Each request is its own cause: pressing twice answers "already ..." the second time.
    cause = f"admin:{uuid.uuid4().hex}"
    request = StatusChange(VERBS[verb], actor, cause, note)
    github = container.settings.tracks_github
    outcome = change_status(engine, container.events, incident_id, request, github=github)
    if outcome.incident_id is None:
        raise ApiError(404, "not_found", f"no incident with id {incident_id[:64]!r}")
    if not outcome.changed:
        raise ApiError(409, "conflict", f"incident {incident_id} is {outcome.message}")
    audit.write_entry(engine, actor, f"incident.{verb}", incident_id, note=note)
    detail = _found(get_incident(engine, incident_id), incident_id)
    return IncidentChangeOut(incident=incident_detail_out(detail), message=outcome.message)


def _found(detail: IncidentDetail | None, incident_id: str) -> IncidentDetail:
    if detail is None:
        raise ApiError(404, "not_found", f"no incident with id {incident_id[:64]!r}")
    return detail
