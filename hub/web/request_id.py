"""A request id for every admin and operations request: the caller's `X-Request-ID` when it
is a sane token, else a fresh one; bound for the logs while the request runs and returned in
`X-Request-ID` on every answer, errors included.

Plain ASGI, outside FastAPI's error handling, so that a 500 carries the id too. The webhook
path never comes here (hub/ingest/asgi.py answers it in front of FastAPI)."""

from __future__ import annotations

import logging
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.runtime.logs import bind

log = logging.getLogger(__name__)

HEADER = b"x-request-id"
# What a proxy or client sensibly sends (a UUID, a trace id, base64): nothing that could
# split a log line or a header, and not long.
_SANE = re.compile(r"[A-Za-z0-9._:+/=~-]{1,128}")


def incoming(scope: Scope) -> str | None:
    """The caller's request id, if it sent a sane one."""
    for name, value in scope["headers"]:
        if name == HEADER:
            text = value.decode("latin-1")
            return text if _SANE.fullmatch(text) else None
    return None


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming(scope) or uuid.uuid4().hex
        header = (HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != HEADER]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        with bind(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                # The traceback follows from the server, outside this request's binding.
                log.error("%s %s failed: %s", scope["method"], scope["path"], type(exc).__name__)
                raise
