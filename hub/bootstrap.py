"""The composition root: everything the hub runs is built here, from settings, on demand.

`uvicorn --factory hub.bootstrap:create_app` and `hub serve` call `create_app`; the worker
processes call `build` and then declare the actors. Tests call the same functions with their
own settings. Nothing is built at import time."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp

from hub.admin.retention import retention_clock
from hub.admin.tokens import TokenStore
from hub.config import Settings, warn_unknown_settings
from hub.container import Container, build
from hub.events.models import Status
from hub.events.rejections import RejectionStore
from hub.events.routed_kinds import RouteTable
from hub.events.sweeper import Sweeper, housekeeping_clock
from hub.ingest.asgi import Ingress, with_ingress
from hub.ingest.committer import GroupCommitter, in_thread
from hub.ingest.meter import IngressMeter
from hub.ingest.pg_writer import AsyncPostgresWriter, conninfo
from hub.ingest.rejections import RejectionLog
from hub.ingest.sqlite_writer import SqliteWriter
from hub.observability.sqlite_wal import WalCollector
from hub.ratelimits.inbound import RateLimits
from hub.rules.preview import Catalogue
from hub.rules.state import RulesInForce
from hub.runtime.checkpoint import checkpointer
from hub.runtime.db import is_sqlite, prioritise_writes
from hub.runtime.queue import SHARED_DATABASE_HOLD_S, Enqueuer
from hub.web.app import Service, build_api

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> ASGIApp:
    if settings is None:  # from the environment (`hub serve` has warned already: once)
        warn_unknown_settings()
    container = build(settings)
    return create_app_from(container)


def create_app_from(container: Container) -> ASGIApp:
    settings = container.settings
    store = container.store
    sweeper = Sweeper(
        store, container.events, settings.sweep_interval_s, recover=container.embedded
    )
    # Rules first: a bad file refuses to start (RulesError); a reload is watched for after.
    container.rules.load_at_start()
    container.catalogue = workflows_catalogue
    services: list[Service] = [RulesWatch(container.rules), sweeper]
    if is_sqlite(settings.database_url):
        prioritise_writes(container.engine)
        services.append(checkpointer(container.engine))
        container.metrics.registry.register(WalCollector(container.engine.url.database or ""))
    # Events are stored as `queued`, since the hand-off follows the commit at once; only a
    # failed hand-off writes again, to bring them back within seconds (store.requeue_soon).
    if settings.redis_url and not is_sqlite(settings.database_url):
        hold = SHARED_DATABASE_HOLD_S
        enqueuer = Enqueuer(container.events, store.requeue_soon, hold, paced=True)
    else:
        enqueuer = Enqueuer(container.events, on_failure=store.requeue_soon)
    services.append(enqueuer)
    if container.embedded:
        services.extend(_embedded_workers(container))
    # After the in-process workers, which publish their kinds as they start.
    routes = RouteTable(container.engine, settings.routes_refresh_s)
    services.append(routes)
    committer = _committer(container, enqueuer)
    # Refusals: a log line each (held to a few per kind), written to the table once a second.
    rejections = RejectionLog(RejectionStore(container.engine))
    services.append(rejections.writer())
    # One limiter for the admin API and the ingress's unverified requests.
    limits = RateLimits(settings)
    api = build_api(
        container, services, limits, on_shutdown=[committer.close, container.engine.dispose]
    )
    meter = IngressMeter(container.endpoints)
    container.metrics.registry.register(meter)
    ingress = Ingress(
        container.endpoints,
        committer,
        settings.max_body_bytes,
        limits=limits,
        meter=meter,
        wants=routes.wants,
        rejections=rejections,
    )
    mounted = ", ".join(sorted(container.endpoints)) or "none (no provider secrets configured)"
    log.info("webhook endpoints mounted: %s", mounted)
    if not _admin_tokens_exist(container):
        log.warning("HUB_ADMIN_TOKENS is not set: the admin API refuses every request")
    return with_ingress(api, ingress)


def workflows_catalogue() -> Catalogue:
    """The workflows' own decisions, imported when a preview first asks (never on the
    webhook path: the API does not run workflows)."""
    from handlers.triggers.offline import catalogue_decision

    return catalogue_decision


class RulesWatch:
    """This process follows reloads asked of any process, and SIGHUP asks one."""

    def __init__(self, rules: RulesInForce) -> None:
        self._rules = rules

    def start(self) -> None:
        self._rules.reload_on_sighup()
        self._rules.start()

    def stop(self) -> None:
        self._rules.stop()


def _embedded_workers(container: Container) -> list[Service]:
    """Without Redis, `hub serve` runs the workers: a child process (the default), or
    threads of this one. The clock only sends a message; retention runs where workers do."""
    from hub.workers import InProcessWorkers
    from hub.workers.embedded import ChildWorkers

    settings = container.settings
    clock = housekeeping_clock(container.events, container.limits, settings.sweep_interval_s)
    if settings.embedded_workers == "process":
        return [ChildWorkers(container, settings.worker_threads), clock]
    services: list[Service] = [InProcessWorkers(container, settings.worker_threads), clock]
    if settings.retention_interval_s > 0:
        services.append(retention_clock(container.engine, settings, container.limits))
    return services


def _admin_tokens_exist(container: Container) -> bool:
    """HUB_ADMIN_TOKENS or a live token made with `hub tokens create`."""
    if any(token.get_secret_value().strip() for token in container.settings.admin_tokens):
        return True
    try:
        return TokenStore(container.engine).any_live()
    except Exception:  # no schema yet (/readyz says so): no tokens there either
        return False


def _committer(container: Container, enqueuer: Enqueuer) -> GroupCommitter:
    settings, store = container.settings, container.store
    if is_sqlite(settings.database_url):
        sqlite = SqliteWriter(container.engine, store.plan_insert, Status.QUEUED)
        insert, close = in_thread(sqlite, on_close=sqlite.close)
        return GroupCommitter(insert, enqueuer.submit, max_in_flight=1, on_close=close)
    writer = AsyncPostgresWriter(conninfo(settings.database_url), store.plan_insert, Status.QUEUED)
    return GroupCommitter(writer, enqueuer.submit, max_in_flight=2, on_close=writer.close)
