"""How long to wait before trying again, for everything the hub retries: events whose
workflow failed (handlers.dispatch) and Slack or GitHub calls an incident owes
(handlers.outbox). One rule, so the two cannot drift apart."""

from __future__ import annotations

import random


def backoff(attempts: int, minimum: float, maximum: float) -> float:
    """`minimum` after the first failure, doubling with each further one up to `maximum`,
    spread ±20% so that work which failed together (a dependency down for everyone) does not
    come back together."""
    base: float = min(maximum, minimum * 2 ** min(max(0, attempts - 1), 62))
    return base * random.uniform(0.8, 1.2)
