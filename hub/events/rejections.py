"""Refused webhook requests kept for admins (`GET /admin/rejections`, `hub events rejected`).

A table, not a per-process ring: the database is the hub's source of truth, every API
process writes to it, so an admin sees every process's refusals in one list, and it survives
a restart. It stays small and cheap to write:

- the ingress hands a refusal over with `add` (a deque append: O(1), no I/O, no lock taken
  by the event loop); a background thread writes what gathered in one transaction per
  second (`flush`), never a commit per refused request;
- only what the log writes is kept (hub/ingest/rejections.py holds each kind of refusal to
  a few lines per 10 s and then one summary row with a `count`), so a flood is a few rows;
- the buffer is bounded (`BUFFER`): if the database is down, the oldest waiting refusals
  are dropped rather than memory growing;
- the table keeps the newest `KEEP` rows: each flush deletes everything older in one range
  delete on the primary key, once at least `PRUNE_BATCH` rows have gone past the cap."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, Table, delete, func, insert, select

from hub.events.models import Rejection, as_utc
from hub.events.queries import clamp_limit
from hub.runtime.db import write

rejections: Table = Rejection.__table__  # type: ignore[attr-defined]

KEEP = 10_000
PRUNE_BATCH = 500
BUFFER = 5_000
REASON_CHARS = 500

# What the ingress hands over: at (epoch s), provider, endpoint, status, error, reason,
# client, count. A tuple: the cheapest thing to build on the event loop.
Pending = tuple[float, str, str, int, str, str, str, int]


@dataclass(frozen=True, slots=True)
class RejectionRow:
    id: int
    at: datetime
    provider: str
    endpoint: str
    status: int
    error: str
    reason: str
    client: str
    count: int


@dataclass(frozen=True, slots=True)
class RejectionFilter:
    provider: str | None = None
    error: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class RejectionStore:
    def __init__(self, engine: Engine, *, keep: int = KEEP, prune_batch: int = PRUNE_BATCH):
        self.engine = engine
        self._keep = keep
        self._prune_batch = prune_batch
        self._pending: deque[Pending] = deque(maxlen=BUFFER)
        self._pruned_to = 0  # ids at or below this were deleted by this process

    def add(self, row: Pending) -> None:
        """Called on the event loop for each refusal the log wrote: no I/O."""
        self._pending.append(row)

    def flush(self) -> int:
        """Write what gathered in one transaction and prune past the cap; how many rows."""
        batch: list[dict[str, object]] = []
        while self._pending:
            try:
                at, provider, endpoint, status, error, reason, client, count = (
                    self._pending.popleft()
                )
            except IndexError:  # another thread flushed meanwhile (shutdown)
                break
            batch.append(
                {
                    "at": datetime.fromtimestamp(at, UTC),
                    "provider": provider[:32],
                    "endpoint": endpoint[:64],
                    "status": status,
                    "error": error[:32],
                    "reason": reason[:REASON_CHARS],
                    "client": client[:64],
                    "count": count,
                }
            )
        if not batch:
            return 0
        with write(self.engine) as conn:
            conn.execute(insert(rejections), batch)
            newest = conn.execute(select(func.max(rejections.c.id))).scalar_one()
            floor = int(newest or 0) - self._keep
            if floor - self._pruned_to >= self._prune_batch:
                conn.execute(delete(rejections).where(rejections.c.id <= floor))
                self._pruned_to = floor
        return len(batch)


def list_rejections(
    engine: Engine, filters: RejectionFilter, before: int | None = None, limit: int = 100
) -> list[RejectionRow]:
    """Newest first; `before` is the id of the last row of the previous page."""
    stmt = select(rejections)
    if filters.provider is not None:
        stmt = stmt.where(rejections.c.provider == filters.provider)
    if filters.error is not None:
        stmt = stmt.where(rejections.c.error == filters.error)
    if filters.since is not None:
        stmt = stmt.where(rejections.c.at >= as_utc(filters.since))
    if filters.until is not None:
        stmt = stmt.where(rejections.c.at < as_utc(filters.until))
    if before is not None:
        stmt = stmt.where(rejections.c.id < before)
    stmt = stmt.order_by(rejections.c.id.desc()).limit(clamp_limit(limit))
    with engine.connect() as conn:
        rows = [r._mapping for r in conn.execute(stmt)]
    # `count` by name: a Row is a tuple, whose attribute of that name is tuple.count.
    return [RejectionRow(**{**m, "at": as_utc(m["at"])}) for m in rows]
