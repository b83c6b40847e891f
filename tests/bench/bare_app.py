"""The benchmark's floor: the least a FastAPI webhook route can do (read the body, answer).

Served exactly like the hub (`uvicorn --factory`, uvloop, httptools, no access log), so the
ratio hub/bare measures what the hub adds on top of the framework, not server settings."""

from __future__ import annotations

from fastapi import FastAPI, Request


def create_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    # Both providers the ingest benchmark sends (tests/bench/mix.py), one route each.
    @app.post("/webhooks/stripe")
    async def stripe_webhook(request: Request) -> dict[str, object]:
        body = await request.body()
        # Same answer shape and size as the hub's, so both send the same bytes back.
        return {"event_id": "evt_bare", "duplicate": False, "bytes": len(body)}

    @app.post("/webhooks/github")
    async def github_webhook(request: Request) -> dict[str, object]:
        body = await request.body()
        return {"event_id": "evt_bare", "duplicate": False, "bytes": len(body)}

    return app
