"""EventStore.release_claims: a dead worker process's claims end at once, and no one else's.

On both databases; `hub worker` calls it when it sees one of its processes exit
(tests/test_dead_worker_process.py runs that end to end)."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from hub.events.models import Status, utcnow
from hub.events.store import AttemptRecord, EventStore, NewEvent
from hub.runtime.db import make_engine


def stored(store: EventStore, n: int, prefix: str) -> list[str]:
    batch = [NewEvent("github", f"{prefix}-{i}", "ping", {}, b"{}") for i in range(n)]
    return [s.event_id for s in store.insert(batch, Status.QUEUED)]


def test_a_dead_claimers_events_are_claimable_at_once_and_no_one_elses(engine: Engine) -> None:
    dead = EventStore(engine, claimer="dead-consumer")
    alive = EventStore(engine, claimer="live-consumer")
    held_by_dead = stored(dead, 3, "a")
    held_by_alive = stored(alive, 2, "b")
    assert len(dead.claim(held_by_dead)) == 3
    assert len(alive.claim(held_by_alive)) == 2
    # One the dead process had settled before it died: not `processing`, so not touched.
    now = utcnow()
    ok = AttemptRecord("handlers.system.acknowledge_ping", now, now, "ok")
    dead.settle(held_by_dead[:1], Status.PROCESSED, [(held_by_dead[0], ok)])

    # Under their 30 s lease, a new worker may not take any of them.
    newcomer = EventStore(engine, claimer="new-consumer")
    assert newcomer.claim(held_by_dead + held_by_alive) == []
    assert dead.release_claims("dead-consumer") == 2
    time.sleep(0.01)  # the lease ended at the release's clock; the claim's is later
    taken = newcomer.claim(held_by_dead + held_by_alive)
    assert sorted(c.id for c in taken) == sorted(held_by_dead[1:])


@pytest.mark.services
def test_a_release_that_would_wait_on_a_row_lock_gives_up(postgres_url: str) -> None:
    """The dead process's backend may still hold a row it was settling: the supervisor must
    not hang on it (the lease still brings the event back)."""
    engine = make_engine(postgres_url)
    store = EventStore(engine, claimer="dead-consumer")
    (event_id,) = stored(store, 1, "c")
    store.claim([event_id])
    with psycopg.connect(postgres_url.replace("+psycopg", "")) as holder:
        holder.execute("SELECT 1 FROM events WHERE id = %s FOR UPDATE", (event_id,))
        start = time.monotonic()
        with pytest.raises(OperationalError, match="lock timeout"):
            store.release_claims("dead-consumer")
        assert time.monotonic() - start < 5
    engine.dispose()
