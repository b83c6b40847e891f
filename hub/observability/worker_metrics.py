"""What the workers count (workflow attempts, settled events, Slack and GitHub calls), kept
where the API's `/metrics` can read it.

Workers run in this process (embedded mode) or in `hub worker` processes elsewhere. In-process,
the API reads the very object the workers add to. With Redis, each process adds in memory
and a thread adds the deltas to one Redis hash every second (HINCRBY in one MULTI), so no
event waits on a round trip; the API reads the hash when scraped. The hash is the cluster's
total: every API instance exposes the same worker series."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Protocol

import redis

from hub.config import Settings
from hub.runtime.periodic import Periodic

# A hash field is "<series>\t<label value>\t...": label values here are workflow names,
# method names and fixed words, none of which contains a tab.
SEP = "\t"
# series -> (metric name, help, label names); counters, so the exposition adds `_total`.
SERIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "attempts": (
        "hub_workflow_attempts",
        "Workflow runs, by workflow.",
        ("workflow",),
    ),
    "failures": (
        "hub_workflow_failures",
        "Workflow runs that raised, by workflow.",
        ("workflow",),
    ),
    "settled": (
        "hub_events_settled",
        "Events the router settled: processed, retry (back to queued) or failed.",
        ("outcome",),
    ),
    "calls": (
        "hub_outbound_calls",
        "Slack and GitHub API calls made by workers, by target and method.",
        ("target", "method"),
    ),
    "limited": (
        "hub_outbound_rate_limited",
        "Outbound calls answered with a rate limit (429), by target and method.",
        ("target", "method"),
    ),
    "effects": (
        "hub_effects",
        "Outbox effects performed: done, waited (own budget), rate_limited, retry, dead.",
        ("kind", "outcome"),
    ),
    "rule_matches": (
        "hub_rule_matches",
        "Events a routing rule applied to, by rule.",
        ("rule",),
    ),
    "rule_misses": (
        "hub_rule_misses",
        "Rule `where` expressions that could not be evaluated for an event (a missing field, "
        "a type mismatch): the rule did not match. By rule.",
        ("rule",),
    ),
    "silenced": (
        "hub_incidents_silenced",
        "Incidents opened under a silence (announced when it ends, if still live).",
        (),
    ),
}
FLUSH_INTERVAL_S = 1.0


class Counters(Protocol):
    def add(self, field: str, n: int = 1) -> None: ...

    def totals(self) -> dict[str, int]:
        """Every field's value so far (for a scrape)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class LocalCounters:
    def __init__(self) -> None:
        self._values: dict[str, int] = {}
        self._lock = threading.Lock()  # several worker threads add at once

    def add(self, field: str, n: int = 1) -> None:
        with self._lock:
            self._values[field] = self._values.get(field, 0) + n

    def merge(self, deltas: Mapping[str, int]) -> None:
        with self._lock:
            for field, n in deltas.items():
                self._values[field] = self._values.get(field, 0) + n

    def take(self) -> dict[str, int]:
        """The values so far, leaving zero behind."""
        with self._lock:
            values, self._values = self._values, {}
        return values

    def totals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class RedisCounters:
    def __init__(self, client: redis.Redis, key: str, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self._client = client
        self.key = key
        self._pending = LocalCounters()
        # `last`: what the final second counted is flushed when the worker stops.
        self._flusher = Periodic("metrics-flush", interval_s, self.flush, last=self.flush)

    def add(self, field: str, n: int = 1) -> None:
        self._pending.add(field, n)

    def flush(self) -> None:
        deltas = self._pending.take()
        if not deltas:
            return
        try:
            pipe = self._client.pipeline(transaction=True)
            for field, n in deltas.items():
                pipe.hincrby(self.key, field, n)
            pipe.execute()
        except redis.RedisError:
            # Kept for the next flush. MULTI makes a failed one all or nothing; only an
            # answer lost after Redis applied it can count those deltas twice.
            self._pending.merge(deltas)
            raise

    def totals(self) -> dict[str, int]:
        raw: dict[bytes, bytes] = self._client.hgetall(self.key)  # type: ignore[assignment]
        return {field.decode(): int(value) for field, value in raw.items()}

    def start(self) -> None:
        self._flusher.start()

    def stop(self) -> None:
        self._flusher.stop()


def build_counters(settings: Settings) -> Counters:
    if not settings.redis_url:
        return LocalCounters()
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    return RedisCounters(client, f"{settings.redis_namespace}:metrics")


class WorkerMetrics:
    """The counting side, as the handlers see it."""

    def __init__(self, counters: Counters | None = None) -> None:
        self.counters: Counters = counters if counters is not None else LocalCounters()

    def attempt(self, workflow: str, *, ok: bool) -> None:
        self.counters.add(f"attempts{SEP}{workflow}")
        if not ok:
            self.counters.add(f"failures{SEP}{workflow}")

    def settled(self, outcome: str, n: int = 1) -> None:
        self.counters.add(f"settled{SEP}{outcome}", n)

    def call(self, target: str, method: str) -> None:
        self.counters.add(f"calls{SEP}{target}{SEP}{method}")

    def rate_limited(self, target: str, method: str) -> None:
        self.counters.add(f"limited{SEP}{target}{SEP}{method}")

    def effect(self, kind: str, outcome: str) -> None:
        self.counters.add(f"effects{SEP}{kind}{SEP}{outcome}")

    def rule_matched(self, rule: str) -> None:
        self.counters.add(f"rule_matches{SEP}{rule}")

    def rule_missed(self, rule: str) -> None:
        self.counters.add(f"rule_misses{SEP}{rule}")

    def silenced(self) -> None:
        self.counters.add("silenced")
