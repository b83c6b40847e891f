"""Outbound pacing shared by every worker: Redis when configured, this process otherwise.

Each limit is a minimum spacing between calls under one key (one Slack channel, the Slack
workspace, the GitHub token). `reserve` either takes the next slot now and answers 0, or
answers how long until one frees, so a worker can reschedule the work instead of sleeping
in its thread. Dramatiq's bucket limiters answer only yes or no, and let two calls straddle
a bucket boundary milliseconds apart, which Slack's one-post-per-second would refuse."""

from __future__ import annotations

import threading
import time
from typing import Protocol

import redis

# KEYS[1]: the key; ARGV[1]: spacing in ms. The server's clock, so that workers on hosts
# whose clocks differ still agree. Returns ms to wait (0: the slot was taken).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local free_at = tonumber(redis.call('GET', KEYS[1]) or '0')
if free_at > now then return free_at - now end
redis.call('SET', KEYS[1], now + tonumber(ARGV[1]), 'PX', tonumber(ARGV[1]) + 1000)
return 0
"""

# ms; a 429's Retry-After blocks the key for everyone until it passes.
_BLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local free_at = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > free_at then
  redis.call('SET', KEYS[1], until_ms, 'PX', tonumber(ARGV[1]) + 1000)
end
return 0
"""


class Limits(Protocol):
    def reserve(self, key: str, spacing_s: float) -> float:
        """0 if a call under `key` may go now (and the slot is taken), else seconds to wait."""
        ...

    def block(self, key: str, for_s: float) -> None:
        """No call under `key` before `for_s` from now (a 429 said so)."""
        ...


class LocalLimits:
    def __init__(self) -> None:
        self._free_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str, spacing_s: float) -> float:
        now = time.monotonic()
        with self._lock:
            free_at = self._free_at.get(key, 0.0)
            if free_at > now:
                return free_at - now
            self._free_at[key] = now + spacing_s
            return 0.0

    def block(self, key: str, for_s: float) -> None:
        until = time.monotonic() + for_s
        with self._lock:
            self._free_at[key] = max(self._free_at.get(key, 0.0), until)


class RedisLimits:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._prefix = f"{namespace}:limit:"
        self._reserve = client.register_script(_RESERVE)
        self._block = client.register_script(_BLOCK)

    def reserve(self, key: str, spacing_s: float) -> float:
        wait_ms = int(self._reserve(keys=[self._prefix + key], args=[int(spacing_s * 1000)]))
        return wait_ms / 1000

    def block(self, key: str, for_s: float) -> None:
        self._block(keys=[self._prefix + key], args=[int(for_s * 1000)])


def build_limits(redis_url: str | None, namespace: str) -> Limits:
    if not redis_url:
        return LocalLimits()
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    return RedisLimits(client, namespace)
