"""Which kinds of event some worker wants, shared through the database.

Most webhooks are kinds no workflow handles (Stripe's `payment_intent.succeeded`, GitHub's
`push`). Sent through the queue, each costs a broker message share, a claim and a second
row version only to end `ignored`; measured here, that was about 60 µs of CPU per event,
a third of what the whole hub spends on it. Stored `ignored` at ingest, it costs one INSERT.

The API does not import the workflows (nor should it trust its own copy of them during a
rolling deploy), so workers publish the kinds they route when they start, and the API
reloads the set every few seconds. Until it has one, it sends everything to the queue,
where the claim still marks unrouted kinds `ignored`. A kind that a new release routes may
meet an API that has not reloaded yet: such events are taken back once, after every API
must have reloaded (`catch_up`)."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import Engine, Update, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hub.events.ids import id_floor
from hub.events.models import Route, Status, utcnow
from hub.events.store import events
from hub.runtime.db import write
from hub.runtime.periodic import Periodic

log = logging.getLogger(__name__)

routes = Route.__table__  # type: ignore[attr-defined]
# Clocks of different machines: events stamped up to this long before a kind's publication
# may still have met an API that did not know it.
CLOCK_SKEW = timedelta(seconds=60)


def kind(provider: str, type_: str) -> str:
    return f"{provider}:{type_}"


def publish(engine: Engine, kinds: Collection[str]) -> None:
    """Record the kinds this worker routes; a kind already there keeps its first date."""
    if not kinds:
        return
    dialect = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    stmt = dialect(routes).on_conflict_do_nothing(index_elements=["kind"])
    with write(engine) as conn:
        conn.execute(stmt, [{"kind": k, "published_at": now} for k in sorted(kinds)])


def catch_up(engine: Engine, settled_after: timedelta) -> int:
    """Take back events ignored at ingest whose kind was published since: every API has
    reloaded `settled_after` past a publication. Runs once per kind; the count taken back."""
    now = utcnow()
    with write(engine) as conn:
        due = select(routes.c.kind, routes.c.published_at).where(
            routes.c.caught_up_at.is_(None), routes.c.published_at <= now - settled_after
        )
        if engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)  # two workers: one does each kind
        pending = conn.execute(due).all()
        if not pending:
            return 0
        taken = 0
        for name, published_at in pending:
            taken += conn.execute(_take_back(), _params(name, published_at, now)).rowcount
        done = [name for name, _ in pending]
        conn.execute(update(routes).where(routes.c.kind.in_(done)).values(caught_up_at=now))
    if taken:
        log.warning("took back %d events ignored at ingest before their kind was routed", taken)
    return taken


def _take_back() -> Update:
    # runs == 0: ignored at ingest. The claim sets runs >= 1, so an event a worker ignored
    # (its kind unrouted then) is left alone. The deadline hands it to the sweeper.
    return (
        update(events)
        .where(
            events.c.status == Status.IGNORED,
            events.c.runs == 0,
            events.c.id >= bindparam("p_floor"),
            events.c.provider == bindparam("p_provider"),
            events.c.type == bindparam("p_type"),
        )
        .values(status=Status.RECEIVED, updated_at=bindparam("p_now"), deadline=bindparam("p_now"))
    )


def _params(name: str, published_at: datetime, now: datetime) -> dict[str, object]:
    provider, _, type_ = name.partition(":")
    floor = id_floor(published_at - CLOCK_SKEW)
    return {"p_floor": floor, "p_provider": provider, "p_type": type_, "p_now": now}


class RouteTable:
    """The API's copy of the published kinds, reloaded every `refresh_s` on a thread."""

    def __init__(self, engine: Engine, refresh_s: float) -> None:
        self._engine = engine
        self.refresh_s = refresh_s
        # None: not known yet (or turned off), so every event goes through the queue.
        self._kinds: frozenset[str] | None = None
        self._job = Periodic("routes", refresh_s or 1.0, self.reload)
        self._started = False

    def wants(self, provider: str, type_: str) -> bool:
        """False only for a kind no worker has published; when in doubt, True."""
        kinds = self._kinds
        # The format of `kind()`, inlined: this runs once per webhook.
        return kinds is None or f"{provider}:{type_}" in kinds

    def reload(self) -> None:
        with self._engine.connect() as conn:
            kinds = frozenset(conn.execute(select(routes.c.kind)).scalars())
        # An empty table: no worker has started yet, so nothing is known to be unwanted.
        self._kinds = kinds or None

    def start(self) -> None:
        if self.refresh_s <= 0:
            return
        try:
            self.reload()  # before the first request: the set is known from the start
        except Exception as exc:  # the database is down: reloaded on the next tick
            log.warning("routes not loaded yet: %s", type(exc).__name__)
        self._job.start()
        self._started = True

    def stop(self) -> None:
        if self._started:
            self._job.stop()


class Publisher:
    """A worker's side: publish its kinds, then take back what slipped past, once.

    Both retry on a thread until they succeed: a worker that started while the database was
    down must still publish, or the API would keep storing its kinds `ignored`."""

    def __init__(self, engine: Engine, kinds: Collection[str], refresh_s: float) -> None:
        self._engine = engine
        self._kinds = list(kinds)
        self._settled = timedelta(seconds=2 * refresh_s + 1)
        self._published_at: datetime | None = None
        self._done = False
        self._job = Periodic("routes-publisher", max(1.0, refresh_s), self.tick)

    def start(self) -> None:
        self.tick()
        self._job.start()

    def stop(self) -> None:
        self._job.stop()

    def tick(self) -> None:
        if self._done:
            return
        try:
            if self._published_at is None:
                publish(self._engine, self._kinds)
                self._published_at = utcnow()
            if utcnow() - self._published_at >= self._settled:
                catch_up(self._engine, self._settled)
                self._done = True
        except Exception as exc:  # the database is down: the next tick tries again
            step = "publish" if self._published_at is None else "catch-up"
            log.warning("routes %s failed, retrying: %s: %s", step, type(exc).__name__, exc)
