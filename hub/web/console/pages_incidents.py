"""Incidents: the list by status and severity, one with its timeline, events and links, and
Acknowledge / Resolve / Reopen through the same change as the API and the Slack buttons."""

from __future__ import annotations

from typing import get_args

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from hub.admin.tokens import Scope
from hub.incidents.queries import IncidentFilter, get_incident, list_incidents
from hub.web.admin_incidents import apply_change
from hub.web.admin_schemas import IncidentState, Severity
from hub.web.console.context import Console
from hub.web.console.guard import Signed, Viewer
from hub.web.console.render import Refused
from hub.web.schemas import ApiError

PAGE = 50
VERBS = {"ack": "acknowledged", "resolve": "resolved", "reopen": "reopened"}
STATES = list(get_args(IncidentState))
SEVERITIES = list(get_args(Severity))


def add_routes(router: APIRouter, console: Console) -> None:
    reader = Depends(console.auth.reads())
    responder = Depends(console.auth.acts(Scope.INCIDENTS))

    @router.get("/incidents")
    def incidents(request: Request, viewer: Viewer = reader) -> HTMLResponse:
        params = request.query_params
        status = params.get("status") if params.get("status") in STATES else None
        severity = params.get("severity") if params.get("severity") in SEVERITIES else None
        cursor = params.get("cursor") or None
        rows = list_incidents(console.engine, IncidentFilter(status, severity), cursor, PAGE + 1)
        more = len(rows) > PAGE
        return console.page(
            "incidents.html",
            viewer,
            items=rows[:PAGE],
            next_cursor=rows[PAGE - 1].id if more else None,
            shown={"status": status or "", "severity": severity or ""},
            states=STATES,
            severities=SEVERITIES,
        )

    @router.get("/incidents/{incident_id}")
    def incident(
        incident_id: str, notice: str | None = None, viewer: Viewer = reader
    ) -> HTMLResponse:
        detail = get_incident(console.engine, incident_id)
        if detail is None:
            raise Refused(404, "Not found", f"no incident with id {incident_id[:64]!r}")
        settings = console.container.settings
        return console.page(
            "incident.html",
            viewer,
            notice=notice,
            d=detail,
            i=detail.incident,
            issue_url=_issue_url(
                settings.github_api_url,
                detail.incident.github_repo or settings.github_incident_repo,
                detail.incident.github_issue,
            ),
            links=[link for link in detail.incident.links if _web(link.get("url", ""))],
        )

    @router.post("/incidents/{incident_id}/{verb}")
    def change(
        incident_id: str,
        verb: str,
        signed: Signed = responder,
    ) -> RedirectResponse:
        viewer, fields = signed
        if verb not in VERBS:
            raise Refused(404, "Not found", "no such change")
        try:
            apply_change(
                console.container, incident_id, verb, viewer.actor, fields.get("note", "")[:500]
            )
            notice = VERBS[verb]
        except ApiError as exc:
            if exc.status_code == 404:
                raise Refused(404, "Not found", exc.reason) from None
            notice = "conflict"
        return RedirectResponse(
            f"/console/incidents/{incident_id}?notice={notice}", status_code=303
        )


def _web(url: str) -> bool:
    # A link from a payload becomes an href only when it is http(s): never `javascript:`.
    return url.startswith(("https://", "http://"))


def _issue_url(api_url: str, repo: str | None, number: int | None) -> str | None:
    if not repo or number is None:
        return None
    # api.github.com -> github.com; GitHub Enterprise's API lives under /api/v3 of its site.
    site = api_url.rstrip("/").removesuffix("/api/v3").replace("://api.github.com", "://github.com")
    return f"{site}/{repo}/issues/{number}"
