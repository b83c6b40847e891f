"""Outbound pacing: a slot per spacing per key, shared by every process through Redis."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from hub.ratelimits.outbound import LocalLimits, RedisLimits


def test_local_limits_space_calls_and_say_how_long_to_wait():
    limits = LocalLimits()
    assert limits.reserve("slack:channel:C1", 0.2) == 0
    wait = limits.reserve("slack:channel:C1", 0.2)
    assert 0.1 < wait <= 0.2
    assert limits.reserve("slack:channel:C2", 0.2) == 0  # another key is not held back
    time.sleep(wait + 0.01)
    assert limits.reserve("slack:channel:C1", 0.2) == 0


def test_a_429_blocks_the_key_for_its_retry_after():
    limits = LocalLimits()
    limits.block("slack:channel:C1", 0.3)
    assert limits.reserve("slack:channel:C1", 0.01) > 0.2


@pytest.mark.services
def test_redis_limits_are_shared_between_processes(redis_url, redis_namespace):
    # Two clients stand for two worker processes.
    a = RedisLimits(redis.Redis.from_url(redis_url), redis_namespace)
    b = RedisLimits(redis.Redis.from_url(redis_url), redis_namespace)
    key = f"slack:channel:{uuid.uuid4().hex}"
    assert a.reserve(key, 0.5) == 0
    assert 0.3 < b.reserve(key, 0.5) <= 0.5
    b.block(key, 2.0)
    assert a.reserve(key, 0.5) > 1.5
