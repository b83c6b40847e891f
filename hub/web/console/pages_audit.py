"""The audit trail, filterable by who, what and when."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from hub.admin import audit
from hub.web.admin_schemas import AuditQuery
from hub.web.common import describe_invalid
from hub.web.console.context import Console
from hub.web.console.guard import Viewer

PAGE = 100
FIELDS = ("actor", "action", "since", "until")


def add_routes(router: APIRouter, console: Console) -> None:
    reader = Depends(console.auth.reads())

    @router.get("/audit")
    def audit_page(request: Request, viewer: Viewer = reader) -> HTMLResponse:
        shown = {k: v.strip() for k in FIELDS if (v := request.query_params.get(k, "")).strip()}
        cursor = request.query_params.get("cursor", "")
        try:
            query = AuditQuery.model_validate(shown)
        except ValidationError as exc:
            return console.page(
                "audit.html",
                viewer,
                shown=shown,
                items=[],
                next_cursor=None,
                error=describe_invalid(exc),
            )
        filters = audit.AuditFilter(query.actor, query.action, query.since, query.until)
        before = int(cursor) if cursor.isdigit() else None
        rows = audit.list_entries(console.engine, filters, before, PAGE + 1)
        more = len(rows) > PAGE
        return console.page(
            "audit.html",
            viewer,
            shown=shown,
            items=rows[:PAGE],
            next_cursor=str(rows[PAGE - 1].id) if more else None,
            error=None,
        )
