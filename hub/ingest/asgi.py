"""The webhook hot path as a plain ASGI app: read, verify, store, answer.

It sits in front of FastAPI rather than inside it because a FastAPI route's dependency and
validation machinery costs more than verifying and storing a webhook does."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.events.store import NewEvent
from hub.ingest import meter as m
from hub.ingest.committer import GroupCommitter
from hub.ratelimits.inbound import RateLimits, Verdict
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
        *,
        limits: RateLimits | None = None,
        meter: m.IngressMeter | None = None,
        wants: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.endpoints = dict(endpoints)
        self.committer = committer
        self.max_body_bytes = max_body_bytes
        # Requests that fail verification, per client address: a flood of forged or stale
        # deliveries is shed with 429s. Verified deliveries never reach it.
        self.limits = limits
        self.meter = meter or m.IngressMeter(self.endpoints)
        # Whether some worker routes (provider, type); other kinds are stored `ignored`.
        self.wants = wants or _everything
        # One lookup per request finds the endpoint and its counters together.
        self._routes = {path: (ep, self.meter.meter(path)) for path, ep in self.endpoints.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = perf_counter()
        path = scope["path"][len(PREFIX) :].rstrip("/")
        route = self._routes.get(path)
        if route is None:
            reason = (
                f"no webhook endpoint at /webhooks/{path}; a provider is mounted only when "
                "its signing secret is configured"
            )
            await _error(send, 404, "not_found", reason)
            self.meter.unrouted.record(m.NOT_FOUND, perf_counter() - start)
            return
        endpoint, counters = route
        # Counted in `finally`, not around a helper coroutine: one more coroutine per request
        # would cost more than the counting. An exception escaping counts as `error`.
        outcome = m.ERROR
        try:
            if scope["method"] != "POST":
                outcome = m.METHOD_NOT_ALLOWED
                return await _error(send, 405, "method_not_allowed", "webhooks are POSTed")
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            try:
                body = await self._read_body(headers, receive)
            except TooLarge:
                outcome, limit = m.TOO_LARGE, self.max_body_bytes
                return await _error(send, 413, "too_large", f"body is over the {limit} byte limit")
            try:
                delivery = endpoint.receive(headers, body, time.time())
            except InboundError as exc:
                outcome = await self._refuse(scope, send, exc)
                return
            if delivery.challenge is not None:
                outcome = m.CHALLENGE
                return await _json(send, 200, {"challenge": delivery.challenge})
            provider, type_ = delivery.provider, delivery.type
            routed = self.wants(provider, type_)
            event = NewEvent(provider, delivery.delivery_id, type_, delivery.headers, body, routed)
            try:
                stored = await self.committer.submit(event)
            except Exception:
                ids = {"provider": provider, "delivery_id": delivery.delivery_id}
                log.exception("store unavailable; answering 503 so the sender retries", extra=ids)
                reason = "the event store is unavailable; retry later"
                outcome = m.UNAVAILABLE
                return await _error(send, 503, "unavailable", reason, retry_after=True)
            outcome = m.DUPLICATE if stored.duplicate else m.STORED
            answer = {"event_id": stored.event_id, "duplicate": stored.duplicate}
            if delivery.reply:
                answer.update(delivery.reply)
            await _json(send, 200, answer)
        finally:
            counters.record(outcome, perf_counter() - start)

    async def _refuse(self, scope: Scope, send: Send, exc: InboundError) -> int:
        """Answer a request the adapter refused; its meter outcome."""
        if exc.status == 401 and self.limits is not None:
            verdict = self.limits.hit("unverified", _client(scope))
            if not verdict.allowed:
                await _limited(send, verdict)
                return m.RATE_LIMITED
        await _error(send, exc.status, _ERROR_NAMES.get(exc.status, "refused"), exc.reason)
        return m.REFUSALS.get(exc.status, m.REFUSED)

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


async def _limited(send: Send, verdict: Verdict) -> None:
    extra = [(k.lower().encode(), v.encode()) for k, v in verdict.headers().items()]
    await _json(send, 429, {"error": "rate_limited", "reason": verdict.reason()}, extra)


def _everything(provider: str, type_: str) -> bool:
    return True


def _client(scope: Scope) -> str:
    # uvicorn runs with proxy headers on: this is the address a load balancer forwarded.
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def with_ingress(app: ASGIApp, ingress: Ingress) -> ASGIApp:
    """Route `/webhooks/...` to the ingress and everything else (admin, docs, ops) to FastAPI."""

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            await ingress(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch
