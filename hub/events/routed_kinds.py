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

import fnmatch
import logging
import re
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Integer, Select, Update, bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hub.events.ids import id_floor
from hub.events.models import Route, Status, utcnow
from hub.events.store import events
from hub.runtime.db import read, write
from hub.runtime.periodic import Periodic
from hub.runtime.rows import one_of

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
    reloaded `settled_after` past a publication. Runs once per kind; the count taken back.

    The events are walked in id order, CATCH_UP_CHUNK at a time, for every pending kind at
    once, and a chunk with some to take back is one short write: one statement per kind
    over everything since the publication held SQLite's single writer for over a second on
    a busy hub (every webhook waited; found by `make bench`, 11 s after each start)."""
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
        done = [name for name, _ in pending]
        # Claimed first, so a second worker does not walk the same events meanwhile.
        conn.execute(update(routes).where(routes.c.kind.in_(done)).values(caught_up_at=now))
    by_floor: dict[str, list[str]] = {}
    for name, published_at in pending:
        by_floor.setdefault(id_floor(published_at - CLOCK_SKEW), []).append(name)
    taken = sum(_take_back_from(engine, floor, kinds, now) for floor, kinds in by_floor.items())
    if taken:
        log.warning("took back %d events ignored at ingest before their kind was routed", taken)
    return taken


# Events a step of the catch-up's walk reads, at most.
CATCH_UP_CHUNK = 500


def _take_back_from(engine: Engine, floor: str, kinds: list[str], now: datetime) -> int:
    """Find the events to take back with reads, and take the writer only for those: usually
    there are none (every API had the kinds before their first event), and one read says so.
    A walk of writes held SQLite's single writer, which every webhook's commit waits for,
    500 events at a time over all stored since the publication: 202 write transactions and
    0.26 s for 100,000 events, where this is one read of 0.06 s."""
    exact = [k for k in kinds if not is_pattern(k)]
    globs = [k for k in kinds if is_pattern(k)]
    matches = [re.compile(fnmatch.translate(k)) for k in globs]
    dialect = engine.dialect.name
    taken = 0
    start, op = floor, ">="  # then from just past each chunk's last id
    while True:
        with read(engine) as conn:
            params = {"p_from": start, "p_limit": CATCH_UP_CHUNK, "p_kinds": exact}
            found = conn.execute(_candidates(op, globs, dialect), params).all()
        if not found:
            return taken
        # LIKE is only a first sieve (SQLite's ignores case): fnmatch decides, as in the
        # API's RouteTable.
        ids = [
            event_id
            for event_id, name in found
            if name in exact or any(m.match(name) for m in matches)
        ]
        if ids:
            with write(engine) as conn:
                taken += conn.execute(_take_back(dialect), {"p_ids": ids, "p_now": now}).rowcount
        start, op = str(found[-1][0]), ">"


def _candidates(op: str, globs: list[str], dialect: str) -> Select[Any]:
    """The next CATCH_UP_CHUNK events from `p_from` on, in id order, ignored at ingest (runs
    0: the claim sets runs >= 1, so an event a worker ignored, its kind unrouted then, is
    left alone) of a kind in `p_kinds` or like a glob. An index range on (status, id)."""
    start = events.c.id >= bindparam("p_from") if op == ">=" else events.c.id > bindparam("p_from")
    name = events.c.provider + ":" + events.c.type
    wanted = or_(
        one_of(name, "p_kinds", dialect),
        *(name.like(_like(g), escape="\\") for g in globs),
    )
    return (
        select(events.c.id, name)
        .where(events.c.status == Status.IGNORED, start, events.c.runs == 0, wanted)
        .order_by(events.c.id)
        .limit(bindparam("p_limit", type_=Integer))
    )


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def is_pattern(kind: str) -> bool:
    """A routing rule's glob (`github:check_run.*`), published as it is."""
    return "*" in kind or "?" in kind


def _take_back(dialect: str) -> Update:
    # Checked again in the write: an admin's replay may have moved one since the read. The
    # deadline hands it to the sweeper.
    return (
        update(events)
        .where(
            one_of(events.c.id, "p_ids", dialect),
            events.c.status == Status.IGNORED,
            events.c.runs == 0,
        )
        .values(status=Status.RECEIVED, updated_at=bindparam("p_now"), deadline=bindparam("p_now"))
    )


class RouteTable:
    """The API's copy of the published kinds, reloaded every `refresh_s` on a thread."""

    def __init__(self, engine: Engine, refresh_s: float) -> None:
        self._engine = engine
        self.refresh_s = refresh_s
        # None: not known yet (or turned off), so every event goes through the queue.
        self._kinds: frozenset[str] | None = None
        # Routing rules' globs, and what they said of each kind seen (a few hundred kinds).
        self._patterns: tuple[re.Pattern[str], ...] = ()
        self._judged: dict[str, bool] = {}
        self._globs: list[str] = []
        self._job = Periodic("routes", refresh_s or 1.0, self.reload)
        self._started = False

    def wants(self, provider: str, type_: str) -> bool:
        """False only for a kind no worker has published; when in doubt, True."""
        kinds = self._kinds
        # The format of `kind()`, inlined: this runs once per webhook.
        if kinds is None or (name := f"{provider}:{type_}") in kinds:
            return True
        return bool(self._patterns) and self._globbed(name)

    def _globbed(self, name: str) -> bool:
        found = self._judged.get(name)
        if found is None:
            if len(self._judged) > 10_000:  # senders' types are a small set; be safe anyway
                self._judged = {}
            found = self._judged[name] = any(p.match(name) for p in self._patterns)
        return found

    def reload(self) -> None:
        with self._engine.connect() as conn:
            kinds = frozenset(conn.execute(select(routes.c.kind)).scalars())
        globs = sorted(k for k in kinds if is_pattern(k))
        if globs != self._globs:
            self._patterns = tuple(re.compile(fnmatch.translate(k)) for k in globs)
            self._globs, self._judged = globs, {}
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
