"""Inbound rate limits: the admin API per token, and requests that fail verification per
client address. Counts live in Redis when one is configured, so every API process shares
them; a limiter whose storage is down lets requests through (logged) rather than failing the
admin API or a sender.

A moving window from `limits`, the library slowapi is built on, used directly. slowapi's
`Limiter` would only wrap it here: its decorators and middleware need a `request` and
`response` parameter on every endpoint and answer 429 in their own shape, the webhook ingress
is not a FastAPI route at all, and the hub writes its own X-RateLimit-* and Retry-After."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from hub.config import Settings

log = logging.getLogger(__name__)

# Webhook requests failing verification are answered 401 (with the reason) up to this many
# times HUB_UNVERIFIED_RATE_LIMIT per address, and 429 past it: below that the answer that
# says why is worth more than shedding it, above it the hub protects itself.
FLOOD_FACTOR = 10
FLOOD = "unverified_flood"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    rule: str  # e.g. "600 per 1 minute"
    name: str  # which limit: "admin" or "unverified"
    limit: int
    remaining: int
    reset_at: float  # epoch seconds

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(int(self.reset_at)),
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, int(self.reset_at - time.time()) + 1))
        return out

    def reason(self) -> str:
        return (
            f"rate limit {self.name} ({self.rule}) exceeded; "
            f"retry after {self.headers()['Retry-After']} s"
        )


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self._strategy = self._build(settings)
        self._prefix = f"{settings.redis_namespace}:ratelimit"
        unverified = parse(settings.unverified_rate_limit)
        flood = type(unverified)(
            unverified.amount * FLOOD_FACTOR, unverified.multiples, unverified.namespace
        )
        self._items: dict[str, RateLimitItem] = {
            "admin": parse(settings.admin_rate_limit),
            "unverified": unverified,
            FLOOD: flood,
        }

    @staticmethod
    def _build(settings: Settings) -> MovingWindowRateLimiter:
        if not settings.redis_url:
            return MovingWindowRateLimiter(storage_from_string("memory://"))
        # Short timeouts: a Redis in trouble must not hold admin requests for long.
        storage = storage_from_string(
            settings.redis_url, socket_connect_timeout=1, socket_timeout=1
        )
        return MovingWindowRateLimiter(storage)

    def hit(self, name: str, key: str) -> Verdict:
        item = self._items[name]
        try:
            allowed = self._strategy.hit(item, self._prefix, name, key)
            reset_at, remaining = self._strategy.get_window_stats(item, self._prefix, name, key)
        except Exception as exc:  # storage down: never refuse because of the limiter itself
            log.warning("rate limit storage unavailable, not limiting: %s", type(exc).__name__)
            return Verdict(True, str(item), name, item.amount, item.amount, time.time())
        return Verdict(allowed, str(item), name, item.amount, remaining, reset_at)
