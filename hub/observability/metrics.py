"""`GET /metrics`: one Prometheus registry per app, read when scraped.

Three sources. The ingress's counters live in this process (hub.ingest.meter, registered by
the composition root next to the ingress). The workers' counters are this process's in
embedded mode and a Redis hash otherwise (hub.observability.worker_metrics). Event and
incident counts are queries at scrape time: a gauge that is a query cannot drift from the
database, and no worker has to keep it (the settled history, processed and ignored events and
resolved incidents, is counted at most once per HUB_METRICS_HISTORY_MAX_AGE_S:
hub/events/counts.py). A source that cannot be read
leaves its series out and says so in `hub_metrics_source_up` rather than failing the whole
scrape."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from hub.config import Settings
from hub.events.counts import EVENTS_CURRENT, EVENTS_HISTORY, StatusCounts
from hub.events.models import ACTIVE, Status
from hub.events.store import events
from hub.incidents.changes import incidents
from hub.incidents.models import IncidentStatus
from hub.observability.worker_metrics import SEP, SERIES, Counters, build_counters
from hub.runtime.queue import EventQueue

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class HubState:
    """The database's counts and the workers' counters, as a Prometheus collector."""

    def __init__(
        self,
        queue: EventQueue,
        counters: Counters,
        event_counts: StatusCounts,
        incident_counts: StatusCounts,
    ) -> None:
        self._events = event_counts
        self._incidents = incident_counts
        self._queue = queue
        self._counters = counters

    def describe(self) -> Iterator[Metric]:
        yield from self._database(None)
        yield from self._workers({})
        yield self._backlog(0)
        yield _up({})

    def collect(self) -> Iterator[Metric]:
        up: dict[str, bool] = {}
        try:
            counts: tuple[dict[str, int], dict[str, int]] | None = self._counts()
            up["database"] = True
        except SQLAlchemyError as exc:
            log.warning("metrics: database unreadable: %s", type(exc).__name__)
            counts, up["database"] = None, False
        if counts is not None:
            yield from self._database(counts)
        try:
            totals = self._counters.totals()
            up["worker_counters"] = True
        except redis.RedisError as exc:
            log.warning("metrics: worker counters unreadable: %s", type(exc).__name__)
            totals, up["worker_counters"] = {}, False
        yield from self._workers(totals)
        yield self._backlog(self._queue.backlog())
        yield _up(up)

    def _counts(self) -> tuple[dict[str, int], dict[str, int]]:
        return self._events.read(), self._incidents.read()

    def _database(self, counts: tuple[dict[str, int], dict[str, int]] | None) -> Iterator[Metric]:
        event_counts, incident_counts = counts or ({}, {})
        by_status = GaugeMetricFamily(
            "hub_events",
            "Stored events by status (read from the database; processed and ignored, the "
            "settled history, at most HUB_METRICS_HISTORY_MAX_AGE_S old).",
            labels=["status"],
        )
        active = GaugeMetricFamily(
            "hub_events_active",
            "Events not settled yet (received, queued, processing): the work queue's depth.",
        )
        by_incident = GaugeMetricFamily(
            "hub_incidents",
            "Incidents by status (read from the database; resolved at most "
            "HUB_METRICS_HISTORY_MAX_AGE_S old).",
            labels=["status"],
        )
        if counts is not None:
            # Every status, even at zero: a series that appears late breaks rate() and alerts.
            for status in Status:
                by_status.add_metric([status.value], event_counts.get(status.value, 0))
            active.add_metric([], sum(event_counts.get(s.value, 0) for s in ACTIVE))
            for incident_status in IncidentStatus:
                value = incident_counts.get(incident_status.value, 0)
                by_incident.add_metric([incident_status.value], value)
        yield from (by_status, active, by_incident)

    def _workers(self, totals: dict[str, int]) -> Iterator[Metric]:
        families = {
            series: CounterMetricFamily(name, doc, labels=list(labels))
            for series, (name, doc, labels) in SERIES.items()
        }
        for field, value in sorted(totals.items()):
            series, *labels = field.split(SEP)
            family = families.get(series)
            # A field from another version of the hub (a rolling deploy) is left out.
            if family is not None and len(labels) == len(SERIES[series][2]):
                family.add_metric(labels, value)
        yield from families.values()

    def _backlog(self, value: int) -> Metric:
        return GaugeMetricFamily(
            "hub_broker_backlog_messages",
            "Messages sent to the workers and not finished (embedded), or not yet fetched "
            "from the Redis queue.",
            value=value,
        )


def _up(up: dict[str, bool]) -> Metric:
    family = GaugeMetricFamily(
        "hub_metrics_source_up",
        "1 if this scrape could read the source (database, worker_counters), else 0.",
        labels=["source"],
    )
    for source, ok in up.items():
        family.add_metric([source], 1.0 if ok else 0.0)
    return family


@dataclass
class Metrics:
    registry: CollectorRegistry
    # The workers' counters: what this process's workers add to, and what a scrape reads.
    counters: Counters

    def render(self) -> bytes:
        return generate_latest(self.registry)


def build_metrics(settings: Settings, engine: Engine, queue: EventQueue) -> Metrics:
    """A fresh registry (never the library's global one), so each app, and each test's app,
    has its own."""
    counters = build_counters(settings)
    registry = CollectorRegistry()
    age = settings.metrics_history_max_age_s
    by_event = StatusCounts(
        engine, events.c.status, EVENTS_CURRENT, EVENTS_HISTORY, history_max_age_s=age
    )
    live = [IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED]
    resolved = [IncidentStatus.RESOLVED]
    by_incident = StatusCounts(engine, incidents.c.status, live, resolved, history_max_age_s=age)
    registry.register(HubState(queue, counters, by_event, by_incident))
    ProcessCollector(registry=registry)
    return Metrics(registry, counters)
