"""The FastAPI application: admin API, operations endpoints and their OpenAPI docs."""

from __future__ import annotations

import functools
import gc
import logging
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

from hub.admin.replay import Replayer
from hub.admin.tokens import TokenStore
from hub.ratelimits.inbound import RateLimits
from hub.web import (
    admin,
    admin_incidents,
    admin_manage,
    admin_replay,
    admin_rules,
    console,
    docs,
    errors,
    ops,
)
from hub.web.auth import AdminAuth
from hub.web.request_id import RequestId
from hub.web.schemas import ApiError
from hub.web.webhook_docs import add_webhooks

if TYPE_CHECKING:
    from hub.container import Container

log = logging.getLogger(__name__)


class HubAPI(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outermost, around Starlette's error middleware: a 500 gets its X-Request-ID too.
        return RequestId(super().build_middleware_stack())

    def openapi(self) -> dict[str, Any]:
        # The webhook paths are answered in front of FastAPI (hub/ingest/asgi.py), so no route
        # documents them: their path items are merged in, once, when the document is built.
        if self.openapi_schema is None:
            add_webhooks(super().openapi())
        assert self.openapi_schema is not None
        return self.openapi_schema


class Service(Protocol):
    """A background part of the process (enqueuer, sweeper, in-process workers)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def build_api(
    container: Container,
    services: Sequence[Service],
    limits: RateLimits,
    on_shutdown: Sequence[Callable[[], Awaitable[None] | None]] = (),
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for service in services:
            service.start()
        # Everything built so far lives as long as the process: keep it out of the
        # collector's generations so a full collection does not stall requests.
        gc.collect()
        gc.freeze()
        # A thread waking with results (SQLite commits, the enqueuer) waits for the event loop
        # to hand over the GIL; 1 ms instead of CPython's 5 ms keeps that out of answer times.
        sys.setswitchinterval(0.001)
        try:
            yield
        finally:
            for service in reversed(services):
                service.stop()
            for hook in on_shutdown:
                done = hook()
                if done is not None:
                    await done

    app = HubAPI(
        title="Webhook hub",
        summary="Verified webhook ingestion, incidents and replay for Stripe, GitHub and Slack.",
        version="0.1.0",
        lifespan=lifespan,
        # /docs and /redoc from vendored assets instead (hub/web/docs.py): no CDN.
        docs_url=None,
        redoc_url=None,
        # Every error as `{"error", "reason"}`, Starlette's own 404, 405 and 500 included.
        exception_handlers={
            HTTPException: errors.http_error,
            RequestValidationError: errors.invalid_request,
            Exception: errors.internal_error,
        },
    )
    docs.mount(app)
    app.state.container = container
    app.include_router(ops.router(container))
    settings = container.settings
    tokens = TokenStore(container.engine)
    auth = AdminAuth(settings.admin_tokens, tokens, limits)
    replayer = Replayer(
        container.engine,
        container.events,
        per_second=settings.replay_per_second,
        grace_s=settings.requeue_queued_after_s,
    )
    app.include_router(admin.router(container, auth))
    app.include_router(admin_replay.router(auth, replayer))
    app.include_router(admin_incidents.router(container, auth))
    app.include_router(admin_manage.router(container, auth, tokens))
    app.include_router(admin_rules.router(container, auth))
    console.mount(app, container, auth, replayer)
    app.add_exception_handler(405, _method_not_allowed)
    return app


_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    """405 naming every method the path has in `Allow`, answered as `{"error", "reason"}`.

    Starlette answers from the first route whose path matches, so `Allow` listed that one
    route's method only (`OPTIONS /admin/tokens` said `GET`, though POST is there too)."""
    headers = getattr(exc, "headers", None) or {}
    allowed = {m.strip() for m in headers.get("Allow", "").split(",") if m.strip()}
    paths: dict[str, dict[str, object]] = request.app.openapi().get("paths", {})
    for template, operations in paths.items():
        if _path_pattern(template).fullmatch(request.url.path):
            allowed |= {method.upper() for method in operations if method in _METHODS}
    listed = ", ".join(sorted(allowed))
    reason = f"{request.method[:16]} is not allowed here; this path takes {listed or 'none'}"
    return ApiError(405, "method_not_allowed", reason, {"Allow": listed}).response()


@functools.cache
def _path_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))
