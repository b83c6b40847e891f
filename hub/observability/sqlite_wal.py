"""The embedded database's WAL on /metrics: its file's size. The file grows while a steady load
keeps every checkpoint behind (hub/runtime/checkpoint.py); once a pause lets one catch up,
SQLite writes it from the beginning again but keeps the file at its largest size until the hub
stops. So this is the disk the WAL holds, its high-water mark since the start."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric


class WalCollector:
    def __init__(self, database: str) -> None:
        self._wal = f"{database}-wal"

    def size(self) -> int:
        try:
            return os.path.getsize(self._wal)
        except OSError:  # none yet, or removed when the last connection closed
            return 0

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "hub_sqlite_wal_bytes",
            "Size of the SQLite database's write-ahead log file",
            value=self.size(),
        )
