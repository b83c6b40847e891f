"""Liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from hub.observability.metrics import CONTENT_TYPE
from hub.runtime.db import ping
from hub.runtime.schema import SchemaWatch

if TYPE_CHECKING:
    from hub.container import Container


def router(container: Container) -> APIRouter:
    api = APIRouter(tags=["operations"])
    # Asked now and on each probe until the schema is current, then never again.
    schema = SchemaWatch(container.settings.database_url, container.engine)
    schema.problem()

    @api.get("/healthz", summary="The process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get(
        "/readyz",
        summary="The database (migrated to this hub's schema) and the broker are reachable",
    )
    def readyz() -> JSONResponse:
        checks: dict[str, Any] = {}
        probes: dict[str, Callable[[], None]] = {
            "database": lambda: ping(container.engine),
            "broker": container.events.ping,
        }
        for name, check in probes.items():
            try:
                check()
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"unreachable: {type(exc).__name__}"
        if checks["database"] == "ok":
            checks["schema"] = schema.problem() or "ok"
        ready = all(v == "ok" for v in checks.values())
        if ready:
            return JSONResponse({"ready": True, "checks": checks})
        # The hub's error shape, with the first thing that is wrong as the reason.
        reason = next(f"{k}: {v}" if k != "schema" else v for k, v in checks.items() if v != "ok")
        body = {"error": "not_ready", "reason": reason, "ready": False, "checks": checks}
        return JSONResponse(body, status_code=503)

    # A plain `def`: the scrape's queries run on the thread pool, never on the event loop
    # that answers webhooks.
    @api.get(
        "/metrics",
        summary="Prometheus metrics (text exposition format)",
        response_class=PlainTextResponse,  # documented as text/plain, which is what it is
    )
    def metrics() -> Response:
        return Response(container.metrics.render(), media_type=CONTENT_TYPE)

    return api
