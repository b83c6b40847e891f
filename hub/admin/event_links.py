"""Which incidents an event fed: the reverse of an incident's list of events."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from hub.incidents.changes import incidents
from hub.incidents.queries import incident_events


@dataclass(frozen=True, slots=True)
class FedIncident:
    id: str
    title: str
    severity: str
    status: str


def incidents_fed_by(engine: Engine, event_id: str) -> list[FedIncident]:
    stmt = (
        select(incidents.c.id, incidents.c.title, incidents.c.severity, incidents.c.status)
        .join(incident_events, incident_events.c.incident_id == incidents.c.id)
        .where(incident_events.c.event_id == event_id)
        .order_by(incidents.c.id)
    )
    with engine.connect() as conn:
        return [FedIncident(*row) for row in conn.execute(stmt)]
