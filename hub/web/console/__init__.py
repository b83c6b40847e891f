"""The admin web console at /console/: server-rendered pages over the same queries, replays
and incident changes as the admin API, signed in with the same tokens and scopes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from hub.admin.replay import Replayer
from hub.web.auth import AdminAuth
from hub.web.console import (
    pages_audit,
    pages_events,
    pages_incidents,
    pages_overview,
    pages_replay,
    pages_rules,
    pages_signin,
)
from hub.web.console.context import Console
from hub.web.console.guard import ConsoleAuth
from hub.web.console.render import HERE, ConsoleRoute
from hub.web.console.session import Sessions, session_key

if TYPE_CHECKING:
    from hub.container import Container


def mount(app: FastAPI, container: Container, auth: AdminAuth, replayer: Replayer) -> None:
    settings = container.settings
    sessions = Sessions(session_key(settings), settings.console_session_hours * 3600)
    console = Console(container, ConsoleAuth(auth, sessions), replayer)
    router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
    for pages in (
        pages_signin,
        pages_overview,
        pages_events,
        pages_replay,
        pages_incidents,
        pages_audit,
        pages_rules,
    ):
        pages.add_routes(router, console)
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
