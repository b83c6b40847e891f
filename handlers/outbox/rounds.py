"""A delivery's rounds (handlers/outbox/deliver.py): which effects a round claims, and which
(incident, lane) pairs go on to the next."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from handlers.outbox import records
from handlers.outbox.queries import Next, lane_of
from hub.events.models import as_utc, utcnow

Pair = tuple[str, str]  # (incident id, lane)


class Round:
    """A round's effects: the next of each (incident, lane) named, those due claimed in one
    statement; the others' incidents told when to try again."""

    def __init__(self, due: list[Any], blocked: dict[str, float]) -> None:
        self.due, self.blocked = due, blocked
        self.claimed: list[Any] = []

    @classmethod
    def of(cls, found: dict[Pair, Next], pairs: list[Pair]) -> Round:
        due: list[Any] = []
        blocked: dict[str, float] = {}
        now = utcnow()
        for pair in pairs:
            if (effect := found.get(pair)) is None:
                continue
            wait = (as_utc(effect.effect.not_before) - now).total_seconds()
            if wait > 0:
                blocked[pair[0]] = min(wait, blocked.get(pair[0], wait))
            else:
                due.append(effect.effect)
        return cls(due, blocked)

    def claim(self, conn: Connection) -> None:
        self.claimed = records.claim_all(conn, self.due)


def again_after(
    round_: Round,
    found: dict[Pair, Next],
    waiting: dict[int, float],
    unstarted: list[str],
) -> list[Pair]:
    """The (incident, lane) pairs to read again after a round: done with more open in the
    lane (the next), or not claimed (re-armed since it was read). Not those told to wait or
    not started: they are not in this message any more."""
    done = {e.id for e in round_.claimed}
    again = []
    for effect in round_.due:
        # Read by lane (`queries.next_effects`): its kind has one.
        pair = (effect.incident_id, lane_of(effect.kind) or "")
        if effect.id in waiting or effect.incident_id in unstarted:
            continue
        if effect.id not in done or found[pair].open > 1:
            again.append(pair)
    return again
