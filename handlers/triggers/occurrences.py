"""The UPDATE that adds a run of occurrences to their incident, as one by one would leave it:
the count, last seen, and the latest summary and links (handlers/triggers/batch.py)."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, update

from handlers.triggers.model import Trigger
from hub.events.models import JSONType, utcnow
from hub.incidents.changes import incidents

Pending = list[tuple[str, Trigger, int]]  # event id, trigger, position in the outcomes


def add_statement(
    pending: Pending, *, returning: bool = True, **where: str
) -> tuple[Any, dict[str, Any]]:
    """The statement and parameters that add `pending` as one by one would leave it: the
    count, the latest summary, and the latest links of an occurrence that had a summary."""
    summary: str | None = None
    links: list[dict[str, str]] | None = None
    for _, trigger, _ in pending:
        if trigger.summary:
            summary = trigger.summary
            if trigger.links:
                links = [{"label": item.label, "url": item.url} for item in trigger.links]
    params: dict[str, Any] = {f"p_{name}": value for name, value in where.items()}
    params |= {"p_n": len(pending), "p_now": utcnow(), "p_summary": summary, "p_links": links}
    return _add("key" in where, summary is not None, links is not None, returning), params


@functools.cache
def _add(by_key: bool, summary: bool, links: bool, returning: bool) -> Any:
    """The occurrences' UPDATE ... RETURNING: of the key's live incident, or of one by id;
    setting the summary (and links) only when an occurrence had one, as one by one does."""
    values: dict[str, Any] = {
        "occurrences": incidents.c.occurrences + bindparam("p_n"),
        "last_seen": bindparam("p_now"),
        "updated_at": bindparam("p_now"),
        "revision": incidents.c.revision + 1,
    }
    if summary:
        values["summary"] = bindparam("p_summary")
    if links:
        values["links"] = bindparam("p_links", type_=JSONType)
    # Resolved since the batch read it: no row, and the batch falls back (see `live`).
    where: Any = (incidents.c.id == bindparam("p_incident_id")) & (incidents.c.status != "resolved")
    if by_key:
        where = (incidents.c.key == bindparam("p_key")) & (incidents.c.status != "resolved")
    stmt = update(incidents).where(where).values(**values)
    return stmt.returning(incidents.c.id, incidents.c.status) if returning else stmt
