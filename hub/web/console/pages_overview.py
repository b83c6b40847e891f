"""The overview: traffic per minute by provider and by outcome over the last hour and day,
failed events, the queue, open incidents by severity, Slack's 429s."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, RedirectResponse
from prometheus_client import CollectorRegistry

from hub.admin.overview import DAY, HOUR, per_bucket, snapshot
from hub.observability.worker_metrics import SEP
from hub.web.console.charts import stacked
from hub.web.console.context import Console
from hub.web.console.guard import Viewer

RECEIVED = "hub_webhooks_received"


def add_routes(router: APIRouter, console: Console) -> None:
    reader = Depends(console.auth.reads())

    @router.get("")
    def bare() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=308)

    @router.get("/")
    def overview(viewer: Viewer = reader) -> HTMLResponse:
        container = console.container
        charts = []
        for window in (HOUR, DAY):
            series = per_bucket(console.engine, window)
            charts.append(
                stacked(
                    f"Stored events per minute by provider, last {window.name}", series["provider"]
                )
            )
            charts.append(
                stacked(f"Requests per minute by outcome, last {window.name}", series["outcome"])
            )
        counters = container.metrics.counters.totals()
        return console.page(
            "overview.html",
            viewer,
            charts=charts,
            now=snapshot(console.engine),
            backlog=container.events.backlog(),
            duplicates=duplicates(container.metrics.registry),
            slack_429s=sum(n for f, n in counters.items() if f.startswith(f"limited{SEP}slack")),
        )


def duplicates(registry: CollectorRegistry) -> int:
    """Repeat deliveries this process answered since it started: the ingress counts them in
    memory only (the database keeps one row per delivery), so this is one process's count;
    `/metrics` sums them across processes."""
    total = 0
    # Restricted: only the ingress's meter is read, not the database gauges beside it.
    for family in registry.restricted_registry([f"{RECEIVED}_total"]).collect():
        if family.name == RECEIVED:
            total += sum(
                int(s.value) for s in family.samples if s.labels.get("outcome") == "duplicate"
            )
    return total
