"""A batch's new incidents, written together: one statement per table for all of them.

Applied one by one, opening an incident is eight statements, each a round trip: is the event
applied, the key's watermark, its live incident, then the incident, its link, its timeline
line, its Slack post (and GitHub issue) and the key's new watermark. In the mix users send
(a CI failure on its own repository, a dispute: each opens one) that made an opening cost
~1.4 ms of worker CPU, seven times an occurrence. Here the keys a batch would open are read
in two statements, and what their openings write goes in at the batch's end.

Only a key that is simple to open is taken: the batch's one change for it is a versioned
open, and the database has neither a watermark nor a live incident for it. Anything else
(a stale change, a live incident, a key changed twice in the batch) goes through
`apply_in` as before. The reads take no locks: another worker opening the same key
meanwhile makes one of the inserts fail on the unique keys (the key's watermark, its one
live incident), and the batch runs again, when the key is no longer simple."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from handlers.context import WorkflowContext
from handlers.triggers.apply import Opening, opening, write_openings
from handlers.triggers.model import Change, Trigger
from handlers.triggers.order import incident_keys, key_row
from hub.incidents.changes import Outcome, incidents
from hub.runtime.rows import insert_rows, one_of


class Openings:
    def __init__(
        self, conn: Connection, items: Sequence[tuple[str, Trigger]], applied: Collection[str]
    ) -> None:
        per_key = Counter(trigger.key for _, trigger in items)
        keys = sorted(
            trigger.key
            for event_id, trigger in items
            if per_key[trigger.key] == 1
            and trigger.change == Change.OPEN
            and trigger.version is not None
            and event_id not in applied
        )
        self._free: set[str] = set()
        if keys:
            sql, params = _sql(conn.dialect.name), {"p_keys": keys}
            known = {row[0] for row in conn.execute(sql.marked, params)}
            known |= {row[0] for row in conn.execute(sql.live, params)}
            self._free = set(keys) - known
        self._opened: list[Opening] = []
        self._keys: list[dict[str, Any]] = []

    def open(self, ctx: WorkflowContext, event_id: str, trigger: Trigger) -> Outcome | None:
        """The opening, to be written by `write`; None if the key is not simple to open.
        What `apply_in` does for such a key, in the same rows."""
        if trigger.key not in self._free:
            return None
        self._free.discard(trigger.key)
        rows = opening(ctx, event_id, trigger)
        self._opened.append(rows)
        self._keys.append(key_row(trigger, event_id, rows.incident["id"]))
        return rows.outcome

    def write(self, conn: Connection) -> None:
        if not self._opened:
            return
        write_openings(conn, self._opened)
        insert_rows(conn, incident_keys, self._keys)


@dataclass(frozen=True)
class _Statements:
    marked: Any
    live: Any


@functools.cache
def _sql(dialect: str) -> _Statements:
    live = one_of(incidents.c.key, "p_keys", dialect) & (incidents.c.status != "resolved")
    return _Statements(
        marked=select(incident_keys.c.key).where(one_of(incident_keys.c.key, "p_keys", dialect)),
        live=select(incidents.c.key).where(live),
    )
