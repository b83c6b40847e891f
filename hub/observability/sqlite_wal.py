"""The embedded database's WAL on /metrics: its size now, and how often it was made to start
over (hub/runtime/checkpoint.py). A WAL that keeps growing means its checkpoints cannot copy
it back: a reader holding an old snapshot, or a disk slower than the load."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from hub.runtime.checkpoint import WalState


class WalCollector:
    def __init__(self, state: WalState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "hub_sqlite_wal_bytes",
            "Size of the SQLite database's write-ahead log file",
            value=self._state.size(),
        )
        yield CounterMetricFamily(
            "hub_sqlite_wal_restarts",
            "Times the checkpointer made the WAL start over from its beginning under load",
            value=self._state.restarts,
        )
