"""What PostgreSQL plans for the statements that move named events along, once ANALYZE has
seen a quiet table (few events `received`, `queued` or `processing`) and a burst then puts
thousands in those states: every such statement must start from the ids it names. The same
for a delivery's reads of its incidents' open effects.

Found with the drain benchmark on an analyzed database: the settle's plan walked the status
index over every event `processing` and, for each, ran the id list's locking subquery again
(3,200 x 200 rows): 20 s per settle, a burst of failed payments drained at 210 events/s
instead of 6,600. Autovacuum analyzes `events` as it grows, so every deployment gets there;
the benchmarks' fresh databases, never analyzed, did not."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from handlers.outbox import queries
from hub.events.batch_insert import InsertPlan
from hub.events.models import Status
from hub.events.store import EventStore, NewEvent
from hub.runtime.db import make_engine

pytestmark = pytest.mark.services

QUIET, BURST = 3_000, 1_200


class Statements:
    """The statements containing `part` run while installed, with their parameters."""

    def __init__(self, part: str = " UPDATE events ") -> None:
        self.part = part
        self.seen: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(
        self, conn: Any, cursor: Any, statement: str, params: Any, _ctx: Any, many: bool
    ) -> None:
        text = " ".join(statement.split())
        if conn.dialect.name == "postgresql" and self.part in f" {text} ":
            with self._lock:
                self.seen.append((statement, params))


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        # Only the ANALYZE below may describe the table (not autovacuum, mid-test).
        conn.exec_driver_sql("ALTER TABLE events SET (autovacuum_enabled = false)")
    yield engine
    engine.dispose()


def _events(n: int, start: int = 0) -> list[NewEvent]:
    headers = {"content-type": "application/json"}
    kind = "payment_intent.payment_failed"
    return [NewEvent("stripe", f"evt_{i}", kind, headers, b"{}") for i in range(start, start + n)]


def _nodes(engine: Engine, statement: str, params: Any) -> list[dict[str, Any]]:
    """The plan's nodes as run (EXPLAIN ANALYZE, rolled back: the rows are left as they are)."""
    with engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params)
        (plan,) = cursor.fetchone()[0]
        conn.rollback()
    nodes, todo = [], [plan["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo += node.get("Plans", [])
    return nodes


def _outer(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's nodes outside its CTEs and InitPlans (what the statement itself runs)."""
    found = [node]
    for child in node.get("Plans", []):
        if child.get("Parent Relationship") not in ("InitPlan", "SubPlan"):
            found += _outer(child)
    return found


def test_a_burst_after_a_quiet_analyze_moves_events_by_their_ids(engine: Engine) -> None:
    store = EventStore(engine)
    # A quiet hour: every event settled, and ANALYZE sees none active.
    quiet = [s.event_id for s in store.insert(_events(QUIET), Status.QUEUED)]
    for start in range(0, QUIET, 500):
        store.claim(quiet[start : start + 500])
        store.settle(quiet[start : start + 500], Status.PROCESSED)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE events")

    # The burst: stored, handed to the queue, claimed by several workers' batches.
    burst = [s.event_id for s in store.insert(_events(BURST, QUIET))]
    recorded = Statements()
    event.listen(Engine, "before_cursor_execute", recorded)
    try:
        store.mark_queued(burst[:200])
        store.requeue_soon(burst[:100])
        store.mark_queued(burst[200:])
        for start in range(0, BURST, 200):
            assert len(store.claim(burst[start : start + 200])) == 200
        store.settle(burst[:200], Status.PROCESSED)
    finally:
        event.remove(Engine, "before_cursor_execute", recorded)

    # Run again with the burst in place (each first ran with fewer rows in these states): the
    # named rows are found and locked once, not once per event in the state looked for.
    moves = recorded.seen
    assert len(moves) == 1 + 1 + 1 + BURST // 200 + 1
    for statement, params in moves:
        nodes = _nodes(engine, statement, params)
        locks = [n for n in nodes if n["Node Type"] == "LockRows"]
        assert all(n["Actual Loops"] <= 1 for n in locks), (statement, nodes)
        assert not any(n.get("Index Name") == "ix_events_status_id" for n in nodes), statement
        # The UPDATE finds the locked rows through the primary key, not by a hash join over
        # every event in the table.
        scans = [n["Node Type"] for n in _outer(nodes[0]) if n.get("Relation Name") == "events"]
        assert scans and "Seq Scan" not in scans, (statement, scans)

    # A worker died holding the rest: past their deadline, the sweeper takes them back.
    overdue = "UPDATE events SET deadline = now() - interval '1 minute' WHERE status = 'processing'"
    with engine.begin() as conn:
        conn.exec_driver_sql(overdue)
    recorded = Statements()
    event.listen(Engine, "before_cursor_execute", recorded)
    try:
        assert len(store.sweep(limit=500)) == 500
    finally:
        event.remove(Engine, "before_cursor_execute", recorded)
    (sweep,) = recorded.seen
    nodes = _nodes(engine, *sweep)  # 500 are still overdue
    assert [n["Actual Rows"] for n in nodes if n["Node Type"] == "LockRows"] == [500]
    assert all(n["Actual Loops"] <= 1 for n in nodes if n["Node Type"] == "LockRows"), nodes

    store.claim(burst[200:])
    store.settle(burst[200:], Status.PROCESSED)
    with engine.connect() as conn:
        counts = dict(conn.exec_driver_sql("SELECT status, count(*) FROM events GROUP BY 1").all())
    assert counts == {"processed": QUIET + BURST}


def _incidents_with_posts(engine: Engine, first: int, n: int, status: str) -> list[str]:
    """`n` incidents, each owing (or having made) its Slack post."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO incidents (id, key, title, severity, status, summary, links, source,"
            " occurrences, first_seen, last_seen, updated_at, revision)"
            " SELECT 'inc_' || i, 'key:' || i, 'title', 'sev2', 'open', '', '[]', 'stripe', 1,"
            " now(), now(), now(), 1 FROM generate_series(%(first)s::int, %(last)s::int) AS i",
            {"first": first, "last": first + n - 1},
        )
        conn.exec_driver_sql(
            "INSERT INTO effects (incident_id, kind, dedupe, payload, status, failures,"
            " not_before, created_at, updated_at)"
            " SELECT 'inc_' || i, 'slack.post', 'slack.post:inc_' || i, '{}', %(status)s, 0,"
            " now(), now(), now() FROM generate_series(%(first)s::int, %(last)s::int) AS i",
            {"first": first, "last": first + n - 1, "status": status},
        )
    return [f"inc_{i}" for i in range(first, first + n)]


def test_a_delivery_reads_only_its_incidents_effects_after_a_quiet_analyze(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE effects SET (autovacuum_enabled = false)")
    _incidents_with_posts(engine, 0, QUIET, "done")  # a quiet hour: every post made
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE effects")
    burst = _incidents_with_posts(engine, QUIET, BURST, "pending")  # an outage's new incidents

    recorded = Statements(" FROM effects ")
    event.listen(Engine, "before_cursor_execute", recorded)
    try:
        with engine.connect() as conn:
            found = queries.next_effects(conn, burst[:10])
        due = queries.any_due(engine, burst[:10])
    finally:
        event.remove(Engine, "before_cursor_execute", recorded)
    assert len(found) == 10 and due == burst[:10]
    assert len(recorded.seen) == 2
    for statement, params in recorded.seen:
        nodes = _nodes(engine, statement, params)
        assert not any(n.get("Index Name") == "ix_effects_status_due" for n in nodes), statement
        read = sum(n.get("Actual Rows", 0) for n in nodes if n.get("Relation Name") == "effects")
        assert read <= 2 * 10, (statement, read)  # the named incidents' effects, not the burst's


def test_storing_a_batch_runs_no_check_per_row_on_events(engine: Engine) -> None:
    """The ingress's INSERT of events and their bodies, as the API sends it after a quiet
    ANALYZE: no trigger runs. A foreign key from a body to its event checked each row (a
    lookup and a row lock on the event, written to the WAL): 41 against 34 us of backend CPU
    an event; planned while `events` was nearly empty, the check scanned the whole table
    until the next ANALYZE (1 ms an event at 30,000). Migration 0011."""
    EventStore(engine).insert(_events(QUIET), Status.QUEUED)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE events")
        conn.exec_driver_sql("ANALYZE event_bodies")
    now = datetime.now(UTC)
    batch = _events(10, start=QUIET) + _events(1, start=0)  # a retry of an event stored
    statement, params = InsertPlan.of(batch, Status.QUEUED, now, now).pg_insert()
    with engine.connect() as conn:
        raw = psycopg.RawCursor(conn.connection.driver_connection)  # type: ignore[arg-type]
        raw.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params)
        (plan,) = raw.fetchone()[0]  # type: ignore[index]
        conn.rollback()
    assert plan["Plan"]["Actual Rows"] == 10  # the bodies of the new events, not the retry's
    assert plan.get("Triggers", []) == []
