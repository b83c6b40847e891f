"""Replay under /admin: one event, or every event a filter matches, paced (hub.admin.replay)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from hub.admin.replay import Replayer
from hub.admin.replay_cancel import cancel_replay
from hub.admin.tokens import Scope
from hub.events.queries import EventFilter
from hub.web.admin_schemas import (
    ReplayCancelOut,
    ReplayOneOut,
    ReplayOut,
    ReplayProgressOut,
    ReplayRequest,
    replay_out,
)
from hub.web.auth import Admin, AdminAuth
from hub.web.common import INVALID, admin_router, errors
from hub.web.schemas import ApiError


def router(auth: AdminAuth, replayer: Replayer) -> APIRouter:
    api = admin_router(auth.authenticate, tags=["replay"])
    reader = [Depends(auth.requires(Scope.READ))]
    # A default, not an Annotated alias: FastAPI resolves annotations in module globals.
    as_replayer = Depends(auth.requires(Scope.REPLAY))

    @api.post(
        "/events/{event_id}/replay",
        status_code=202,
        summary="Run one event through its workflows again",
        description="Safe to press twice: workflows are idempotent, so only what is missing "
        "happens (a dead Slack post is sent, a processed event changes nothing outside the "
        "hub). An event already queued or processing is left to run and answered as is.",
        responses=errors({404: "No such event", 409: "The body was redacted by retention"}),
    )
    def replay_event(event_id: str, admin: Admin = as_replayer) -> ReplayOneOut:
        result = replayer.replay_one(event_id, admin.actor)
        if result.verdict == "not_found":
            raise ApiError(404, "not_found", f"no event with id {event_id[:64]!r}")
        if result.verdict == "redacted":
            reason = "the event's body was emptied by retention; it cannot run again"
            raise ApiError(409, "redacted", reason)
        status = result.status or "queued"
        return ReplayOneOut(event_id=event_id, status=status, replayed=result.verdict == "queued")

    @api.post(
        "/replays",
        summary="Replay every event a filter matches (or count them with dry_run)",
        description="Events are handed to the workers at `HUB_REPLAY_PER_SECOND`, not all at "
        "once; follow the progress at `GET /admin/replays/{replay_id}`. Events already on "
        "their way, and redacted ones, are counted as skipped.",
        responses={
            202: {"model": ReplayOut, "description": "Replaying: the events are on their way"},
            **errors({422: INVALID}),
        },
    )
    def replay_matching(
        request: ReplayRequest, response: Response, admin: Admin = as_replayer
    ) -> ReplayOut:
        filters = EventFilter(
            request.provider, request.type, request.status, request.since, request.until
        )
        result = replayer.replay_matching(filters, admin.actor, dry_run=request.dry_run)
        if not request.dry_run:
            response.status_code = 202
        return replay_out(result)

    @api.get(
        "/replays/{replay_id}",
        summary="How far a bulk replay has come",
        dependencies=reader,
        responses=errors({404: "No such replay"}),
    )
    def replay_progress(replay_id: str) -> ReplayProgressOut:
        progress = replayer.progress(replay_id)
        if progress is None:
            raise ApiError(404, "not_found", f"no replay with id {replay_id[:64]!r}")
        return ReplayProgressOut(
            replay_id=progress.replay_id,
            actor=progress.actor,
            filter=progress.filter,
            matched=progress.matched,
            replayed=progress.replayed,
            remaining=progress.remaining,
            by_status=progress.by_status,
            created_at=progress.created_at,
            paced_until=progress.paced_until,
            done=progress.remaining == 0,
        )

    @api.post(
        "/replays/{replay_id}/cancel",
        summary="Cancel the rest of a bulk replay",
        description="Events of the replay that no worker has taken yet go back to the status "
        "they had (failed, processed or ignored); those running finish.",
        responses=errors({404: "No such replay"}),
    )
    def cancel_replay_route(replay_id: str, admin: Admin = as_replayer) -> ReplayCancelOut:
        cancelled = cancel_replay(replayer.engine, replay_id, admin.actor)
        if cancelled is None:
            raise ApiError(404, "not_found", f"no replay with id {replay_id[:64]!r}")
        return ReplayCancelOut(replay_id=replay_id, cancelled=cancelled)

    return api
