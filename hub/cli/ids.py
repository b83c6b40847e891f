"""Short ids on the command line: `hub events show evt_01KBA3X9` for the one event whose id
begins so. A full id is taken as is; a prefix needs MIN_PREFIX characters after `evt_` or
`inc_` (which may be left out; case does not matter) and must match exactly one row."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Column, Engine

MIN_PREFIX = 8  # about a second of ULID time: enough to tell apart events a person saw
SHOWN = 10  # matches listed for an ambiguous prefix


class AmbiguousId(Exception):
    """The prefix matches several rows; the message lists them (for stderr; exit 2)."""

    def __init__(self, given: str, matches: list[str]) -> None:
        more = "\n  ..." if len(matches) > SHOWN else ""
        shown = "".join(f"\n  {m}" for m in matches[:SHOWN])
        many = f"{SHOWN}+" if len(matches) > SHOWN else str(len(matches))
        super().__init__(f"{given} matches {many} ids; give more of one:{shown}{more}")


def resolve_event(engine: Engine, given: str) -> str:
    from hub.events.store import events

    return _resolve(engine, events.c.id, "evt_", given)


def resolve_incident(engine: Engine, given: str) -> str:
    from hub.incidents.changes import incidents

    return _resolve(engine, incidents.c.id, "inc_", given)


def _resolve(engine: Engine, column: Column[Any], kind: str, given: str) -> str:
    """The one id `given` begins; `given` itself when it is a full id or matches nothing
    (the caller then says "not found" as it always has)."""
    from sqlalchemy import select

    rest = given[len(kind) :] if given.lower().startswith(kind) else given
    if len(rest) < MIN_PREFIX:
        return given
    prefix = kind + rest.upper()  # ULIDs are upper-case Crockford base32
    with engine.connect() as conn:
        if conn.execute(select(column).where(column == given)).first() is not None:
            return given
        # A range on the primary key (Crockford's alphabet sorts in ASCII order), checked
        # with a LIKE that escapes the `_` in the kind.
        query = (
            select(column)
            .where(
                column >= prefix, column < prefix + "~", column.startswith(prefix, autoescape=True)
            )
            .order_by(column)
            .limit(SHOWN + 1)
        )
        matches = [str(r[0]) for r in conn.execute(query)]
    if len(matches) > 1:
        raise AmbiguousId(given, matches)
    return matches[0] if matches else given
