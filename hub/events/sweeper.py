"""Takes back events that stopped moving: never enqueued (broker down, process died after
the commit), lost by the broker, or held by a worker that died mid-event."""

from __future__ import annotations

import logging
from datetime import datetime

from hub.events.models import utcnow
from hub.events.store import EventStore
from hub.ratelimits.outbound import Limits
from hub.runtime.periodic import Periodic
from hub.runtime.queue import HOUSEKEEPING_ACTOR, EventQueue

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(
        self, store: EventStore, events: EventQueue, interval_s: float, *, recover: bool = False
    ) -> None:
        self._store = store
        self._events = events
        self._job = Periodic(
            "sweeper", interval_s, self.sweep_once, first=self.recover if recover else None
        )

    def start(self) -> None:
        self._job.start()

    def stop(self) -> None:
        self._job.stop()

    def recover(self) -> int:
        """Re-enqueue every active event at once (embedded start: the old queue is gone)."""
        return self.sweep_once(untouched_since=utcnow())

    def sweep_once(self, untouched_since: datetime | None = None) -> int:
        total = 0
        while True:
            ids = self._store.sweep(limit=1000, untouched_since=untouched_since)
            if ids:
                # Claimed back to `received` with a short deadline: if this send fails they
                # come round again next time.
                self._events.send(ids)
                self._store.mark_queued(ids)
                total += len(ids)
            if len(ids) < 1000:
                break
        if total:
            log.warning("sweeper re-enqueued %d stalled events", total)
        return total


def housekeeping_clock(events: EventQueue, limits: Limits, interval_s: float) -> Periodic:
    """Asks a worker for the periodic incident work (escalations, stranded deliveries).
    Every `hub serve` and `hub worker` runs a clock; the shared limit lets one ask per
    interval whatever the number of processes."""

    def tick() -> None:
        if limits.reserve("housekeeping", interval_s * 0.9) == 0:
            events.send_actor(HOUSEKEEPING_ACTOR, ())

    return Periodic("housekeeping", interval_s, tick)
