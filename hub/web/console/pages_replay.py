"""Bulk replay from the event list's filter: a dry run that counts, a confirmation, then
progress from the same numbers as `GET /admin/replays/{id}`, and cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import ValidationError

from hub.admin.replay import Progress
from hub.admin.replay_cancel import cancel_replay
from hub.admin.tokens import Scope
from hub.events.queries import EventFilter
from hub.web.admin_schemas import ReplayRequest
from hub.web.common import describe_invalid
from hub.web.console.context import Console
from hub.web.console.guard import Signed, Viewer
from hub.web.console.pages_events import REPLAY_FIELDS
from hub.web.console.render import Refused


def add_routes(router: APIRouter, console: Console) -> None:
    reader = Depends(console.auth.reads())
    replaying = Depends(console.auth.acts(Scope.REPLAY))

    @router.post("/replays/dry-run")
    def dry_run(signed: Signed = replaying) -> HTMLResponse:
        viewer, fields = signed
        filters, shown = _filter(fields)
        result = console.replayer.replay_matching(filters, viewer.actor, dry_run=True)
        return console.page("replay_confirm.html", viewer, matched=result.matched, shown=shown)

    @router.post("/replays")
    def start(signed: Signed = replaying) -> RedirectResponse:
        viewer, fields = signed
        filters, _ = _filter(fields)
        result = console.replayer.replay_matching(filters, viewer.actor, dry_run=False)
        if result.replay_id is None:  # nothing matched: there is no progress to follow
            return RedirectResponse("/console/events?status=failed", status_code=303)
        return RedirectResponse(f"/console/replays/{result.replay_id}", status_code=303)

    @router.get("/replays/{replay_id}")
    def progress_page(
        replay_id: str, notice: str | None = None, viewer: Viewer = reader
    ) -> HTMLResponse:
        progress = _progress(console, replay_id)
        return console.page("replay.html", viewer, notice=notice, p=progress_out(progress))

    @router.get("/replays/{replay_id}/progress")
    def progress_json(replay_id: str, viewer: Viewer = reader) -> JSONResponse:
        return JSONResponse(progress_out(_progress(console, replay_id)))

    @router.post("/replays/{replay_id}/cancel")
    def cancel(replay_id: str, signed: Signed = replaying) -> RedirectResponse:
        viewer, _ = signed
        if cancel_replay(console.engine, replay_id, viewer.actor) is None:
            raise Refused(404, "Not found", f"no replay with id {replay_id[:64]!r}")
        return RedirectResponse(f"/console/replays/{replay_id}?notice=cancelled", status_code=303)


def _filter(fields: dict[str, str]) -> tuple[EventFilter, dict[str, str]]:
    shown = {k: v.strip() for k in REPLAY_FIELDS if (v := fields.get(k, "")).strip()}
    try:
        request = ReplayRequest.model_validate(shown)
    except ValidationError as exc:
        raise Refused(422, "Invalid filter", describe_invalid(exc)) from None
    filters = EventFilter(
        request.provider, request.type, request.status, request.since, request.until
    )
    return filters, shown


def _progress(console: Console, replay_id: str) -> Progress:
    progress = console.replayer.progress(replay_id)
    if progress is None:
        raise Refused(404, "Not found", f"no replay with id {replay_id[:64]!r}")
    return progress


def progress_out(p: Progress) -> dict[str, Any]:
    """What `GET /admin/replays/{id}` answers, plus how many have settled."""
    return {
        "replay_id": p.replay_id,
        "actor": p.actor,
        "filter": p.filter,
        "matched": p.matched,
        "replayed": p.replayed,
        "remaining": p.remaining,
        "settled": max(p.replayed - p.remaining, 0),
        "by_status": p.by_status,
        "created_at": p.created_at.isoformat(),
        "paced_until": p.paced_until.isoformat(),
        "done": p.remaining == 0,
    }
