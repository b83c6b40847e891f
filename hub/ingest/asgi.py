"""The webhook hot path as a plain ASGI app: read, verify, store, answer.

It sits in front of FastAPI rather than inside it because a FastAPI route's dependency and
validation machinery costs more than verifying and storing a webhook does."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.ingest.committer import GroupCommitter
from hub.store import NewEvent
from integrations.base import Endpoint, InboundError

log = logging.getLogger(__name__)

PREFIX = "/webhooks/"
_JSON = [(b"content-type", b"application/json")]
_ERROR_NAMES = {400: "malformed", 401: "unauthorized", 415: "unsupported_media_type"}


class TooLarge(Exception):
    pass


class Ingress:
    def __init__(
        self,
        endpoints: Mapping[str, Endpoint],
        committer: GroupCommitter,
        max_body_bytes: int,
        on_refused: Callable[[Scope, int], None] | None = None,
    ) -> None:
        self.endpoints = dict(endpoints)
        self.committer = committer
        self.max_body_bytes = max_body_bytes
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"][len(PREFIX) :].rstrip("/")
        endpoint = self.endpoints.get(path)
        if endpoint is None:
            reason = (
                f"no webhook endpoint at /webhooks/{path}; a provider is mounted only when "
                "its signing secret is configured"
            )
            return await _error(send, 404, "not_found", reason)
        if scope["method"] != "POST":
            return await _error(send, 405, "method_not_allowed", "webhooks are POSTed")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await self._read_body(headers, receive)
        except TooLarge:
            limit = self.max_body_bytes
            return await _error(send, 413, "too_large", f"body is over the {limit} byte limit")
        try:
            delivery = endpoint.receive(headers, body, time.time())
        except InboundError as exc:
            if self.on_refused is not None:
                self.on_refused(scope, exc.status)
            name = _ERROR_NAMES.get(exc.status, "refused")
            return await _error(send, exc.status, name, exc.reason)
        if delivery.challenge is not None:
            return await _json(send, 200, {"challenge": delivery.challenge})
        event = NewEvent(
            delivery.provider, delivery.delivery_id, delivery.type, delivery.headers, body
        )
        try:
            stored = await self.committer.submit(event)
        except Exception:
            log.exception("store unavailable; answering 503 so the sender retries")
            reason = "the event store is unavailable; retry later"
            return await _error(send, 503, "unavailable", reason, retry_after=True)
        answer = {"event_id": stored.event_id, "duplicate": stored.duplicate}
        if delivery.reply:
            answer.update(delivery.reply)
        await _json(send, 200, answer)

    async def _read_body(self, headers: Mapping[str, str], receive: Receive) -> bytes:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise TooLarge
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise TooLarge
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _json(send: Send, status: int, payload: object, extra: list[Any] | None = None) -> None:
    body = orjson.dumps(payload)
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _error(
    send: Send, status: int, error: str, reason: str, *, retry_after: bool = False
) -> None:
    extra = [(b"retry-after", b"5")] if retry_after else None
    await _json(send, status, {"error": error, "reason": reason}, extra)


def with_ingress(app: ASGIApp, ingress: Ingress) -> ASGIApp:
    """Route `/webhooks/...` to the ingress and everything else (admin, docs, ops) to FastAPI."""

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            await ingress(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch
