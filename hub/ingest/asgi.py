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
from hub.ingest.rejections import RejectionLog
from hub.ratelimits.inbound import FLOOD, RateLimits, Verdict
from integrations.base import Endpoint, InboundError

log = logging.getLogger(__name__)

PREFIX = "/webhooks/"
_JSON = [(b"content-type", b"application/json")]


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
        rejections: RejectionLog | None = None,
    ) -> None:
        self.endpoints = dict(endpoints)
        self.committer = committer
        self.max_body_bytes = max_body_bytes
        # Requests that fail verification, per client address: past the flood threshold
        # (10 x HUB_UNVERIFIED_RATE_LIMIT) they are shed with 429s; below it a bad signature
        # is told why (401). Verified deliveries never reach it.
        self.limits = limits
        # One log line per refusal, held to a few per kind, kept for GET /admin/rejections.
        self.rejections = rejections or RejectionLog()
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
            await _error(send, 404, m.OUTCOMES[m.NOT_FOUND], reason)
            self.meter.unrouted.record(m.NOT_FOUND, perf_counter() - start)
            self.rejections.refused(
                m.UNROUTED, m.UNROUTED, 404, m.NOT_FOUND, reason=reason, client=_client(scope)
            )
            return
        endpoint, counters = route
        # Counted in `finally`, not around a helper coroutine: one more coroutine per request
        # would cost more than the counting. An exception escaping counts as `error`.
        outcome = m.ERROR
        try:
            if scope["method"] != "POST":
                reason = "webhooks are POSTed"
                outcome = await self._reject(
                    scope, send, counters, 405, m.METHOD_NOT_ALLOWED, reason=reason
                )
                return
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            try:
                body = await self._read_body(headers, receive)
            except TooLarge:
                reason = f"body is over the {self.max_body_bytes} byte limit"
                outcome = await self._reject(scope, send, counters, 413, m.TOO_LARGE, reason=reason)
                return
            try:
                delivery = endpoint.receive(headers, body, time.time())
            except InboundError as exc:
                outcome = await self._refuse(scope, send, counters, exc)
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
                return await _error(send, 503, m.OUTCOMES[outcome], reason, retry_after=True)
            outcome = m.DUPLICATE if stored.duplicate else m.STORED
            answer = {"event_id": stored.event_id, "duplicate": stored.duplicate}
            if delivery.reply:
                answer.update(delivery.reply)
            await _json(send, 200, answer)
        finally:
            counters.record(outcome, perf_counter() - start)

    async def _refuse(
        self, scope: Scope, send: Send, counters: m.EndpointMeter, exc: InboundError
    ) -> int:
        """Answer a request the adapter refused; its meter outcome.

        The signature has been checked by now (cheaply: one HMAC over a body within the size
        cap), so a client over HUB_UNVERIFIED_RATE_LIMIT is still told why it failed; only
        past the flood threshold is it shed with 429, the hub protecting itself."""
        if exc.status == 401 and self.limits is not None:
            verdict = self.limits.hit(FLOOD, _client(scope))
            if not verdict.allowed:
                await _limited(send, verdict)
                self._record(scope, counters, 429, m.RATE_LIMITED, verdict.reason())
                return m.RATE_LIMITED
        outcome = m.REFUSALS.get(exc.status, m.REFUSED)
        return await self._reject(scope, send, counters, exc.status, outcome, reason=exc.reason)

    async def _reject(
        self,
        scope: Scope,
        send: Send,
        counters: m.EndpointMeter,
        status: int,
        outcome: int,
        *,
        reason: str,
    ) -> int:
        """Answer `{"error", "reason"}` (the error is the metric's outcome word), then log it."""
        await _error(send, status, m.OUTCOMES[outcome], reason)
        self._record(scope, counters, status, outcome, reason)
        return outcome

    def _record(
        self, scope: Scope, counters: m.EndpointMeter, status: int, outcome: int, reason: str
    ) -> None:
        provider, endpoint = counters.provider, counters.endpoint
        client = _client(scope)
        self.rejections.refused(provider, endpoint, status, outcome, reason=reason, client=client)

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
    await _json(send, 429, {"error": m.OUTCOMES[m.RATE_LIMITED], "reason": verdict.reason()}, extra)


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
