"""The FastAPI application: admin API, operations endpoints and their OpenAPI docs."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

from fastapi import FastAPI

from hub.ratelimit import RateLimits
from hub.replay import Replayer
from hub.tokens import TokenStore
from hub.web import admin, admin_incidents, admin_manage, admin_replay, ops
from hub.web.auth import AdminAuth

if TYPE_CHECKING:
    from hub.container import Container

log = logging.getLogger(__name__)


class Service(Protocol):
    """A background part of the process (enqueuer, sweeper, in-process workers)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def build_api(
    container: Container,
    services: Sequence[Service],
    limits: RateLimits,
    on_shutdown: Sequence[Callable[[], None]] = (),
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for service in services:
            service.start()
        # Everything built so far lives as long as the process: keep it out of the
        # collector's generations so a full collection does not stall requests.
        gc.collect()
        gc.freeze()
        # A commit thread waking with results waits for the event loop to hand over the GIL;
        # 1 ms instead of CPython's 5 ms keeps that wait out of the answer times.
        sys.setswitchinterval(0.001)
        try:
            yield
        finally:
            for service in reversed(services):
                service.stop()
            for hook in on_shutdown:
                hook()

    app = FastAPI(
        title="Webhook hub",
        summary="Verified webhook ingestion, incidents and replay for Stripe, GitHub and Slack.",
        version="0.1.0",
        lifespan=lifespan,
    )
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
    return app
