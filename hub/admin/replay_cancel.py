"""Cancel a bulk replay: its events not yet taken by a worker go back to where they were.

A bulk replay queues every event at once and hands them to the workers paced over time
(hub.admin.replay), so cancelling is putting the still-`queued` ones back to a settled
status. The status before the replay is not stored, but the replay kept what tells it:
an event that had failed still carries its `last_error` (settling `processed` or `ignored`
clears it), and an event that ran workflows has attempts, where an `ignored` one has none.
The messages already sent then find a settled event, which a worker never claims. Events a
worker holds (`processing`) finish their run."""

from __future__ import annotations

from sqlalchemy import Engine, case, exists, select, update

from hub.admin import audit
from hub.admin.replay import replays
from hub.events.models import Status, utcnow
from hub.events.store import attempts, events
from hub.runtime.db import write


def cancel_replay(engine: Engine, replay_id: str, actor: str) -> int | None:
    """How many events were taken back; None when there is no such replay."""
    ran = exists(select(attempts.c.id).where(attempts.c.event_id == events.c.id))
    settled = case(
        (events.c.last_error.is_not(None), Status.FAILED.value),
        (ran, Status.PROCESSED.value),
        else_=Status.IGNORED.value,
    )
    with write(engine) as conn:
        if conn.execute(select(replays.c.id).where(replays.c.id == replay_id)).first() is None:
            return None
        cancelled = conn.execute(
            update(events)
            .where(events.c.replay_id == replay_id, events.c.status == Status.QUEUED)
            .values(status=settled, deadline=None, updated_at=utcnow())
        ).rowcount
        audit.record(conn, actor, "replay.cancel", replay_id, cancelled=cancelled)
    return int(cancelled)
