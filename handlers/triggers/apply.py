"""Events applied to incidents: open one, add an occurrence, or resolve, once per event.

The state changes and their outbox live in `hub.incidents.changes`, shared with the admin API;
this module adds what only the workers do (turn a trigger into a change)."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from handlers.context import WorkflowContext
from handlers.triggers import order
from handlers.triggers.model import Change, Route, Trigger
from hub.events.models import JSONType, as_utc, utcnow
from hub.incidents import changes as incident_changes
from hub.incidents.changes import (
    Outcome,
    StatusChange,
    effect_row,
    effects,
    incidents,
    locked,
    rearm,
    timeline,
    timeline_row,
    transition,
)
from hub.incidents.models import IncidentEvent, IncidentStatus
from hub.runtime.db import write
from hub.runtime.logs import bind
from hub.runtime.rows import insert_rows

log = logging.getLogger(__name__)

incident_events: Table = IncidentEvent.__table__  # type: ignore[attr-defined]

OCCURRENCE = "occurrence added"


def apply_trigger(ctx: WorkflowContext, event_id: str, trigger: Trigger) -> Outcome:
    """Open, add to or resolve the incident for `trigger.key`, once per event."""
    for attempt in (1, 2):
        try:
            with write(ctx.engine) as conn:
                outcome = apply_in(conn, ctx, event_id, trigger)
            break
        except IntegrityError:
            # Another worker opened the same key (or applied the same event) concurrently:
            # the second pass sees its row and adds to it, or finds the event applied.
            if attempt == 2:
                raise
    log_outcome(event_id, trigger, outcome)
    if outcome.deliver and outcome.incident_id:
        incident_changes.schedule_delivery(ctx.queue, outcome.incident_id)
    return outcome


def change_status(ctx: WorkflowContext, incident_id: str, change: StatusChange) -> Outcome:
    """Acknowledge, resolve or reopen, as a button or a command asks."""
    github = ctx.github is not None
    return incident_changes.change_status(ctx.engine, ctx.queue, incident_id, change, github=github)


def apply_in(conn: Connection, ctx: WorkflowContext, event_id: str, trigger: Trigger) -> Outcome:
    """One event's change, inside the caller's transaction."""
    sql = _sql()
    if (done := conn.execute(sql.seen, {"p_event": event_id}).scalar()) is not None:
        return Outcome(done, False, None, "event already applied")
    mark = order.watermark(conn, trigger)
    if order.is_stale(trigger, mark):
        return order.apply_stale(conn, event_id, trigger, mark)
    live = conn.execute(sql.live, {"p_key": trigger.key}).first()
    if trigger.change == Change.RESOLVE:
        if live is None:
            outcome = Outcome(None, False, None, "nothing open to resolve")
        else:
            order.link(conn, live.id, event_id)
            change = StatusChange("resolved", trigger.actor, event_id, trigger.note)
            outcome = transition(conn, live, change, github=ctx.github is not None)
    elif live is not None:
        order.link(conn, live.id, event_id)
        outcome = _add_occurrence(conn, live, trigger, event_id)
    else:
        outcome = _open(conn, ctx, event_id, trigger)
    order.advance(conn, trigger, event_id, outcome.incident_id, mark)
    return outcome


def raise_or_clear(
    ctx: WorkflowContext, trigger: Trigger, cause: str, *, quiet_for_s: float = 0.0
) -> Outcome:
    """For conditions the hub sees in itself: open the incident for `trigger.key` if none is
    live; while it stays breached, only note when it was last seen (no message update per
    check); resolve it once it has been clear for `quiet_for_s`, so a condition hovering at
    its threshold does not open and resolve an incident at every check."""
    now = utcnow()
    with write(ctx.engine) as conn:
        live = locked(conn, (incidents.c.key == trigger.key) & (incidents.c.status != "resolved"))
        if trigger.change == Change.RESOLVE:
            if live is None or (now - as_utc(live.last_seen)).total_seconds() < quiet_for_s:
                return Outcome(live.id if live else None, False, None, "not clear for long")
            change = StatusChange("resolved", trigger.actor, cause, trigger.note)
            outcome = transition(conn, live, change, github=ctx.github is not None)
        elif live is not None:
            seen = update(incidents).where(incidents.c.id == live.id).values(last_seen=now)
            conn.execute(seen)
            return Outcome(live.id, False, live.status, "still breached")
        else:
            outcome = _open(conn, ctx, cause, trigger, event=False)
    if outcome.deliver and outcome.incident_id:
        incident_changes.schedule_delivery(ctx.queue, outcome.incident_id)
    return outcome


def log_outcome(event_id: str, trigger: Trigger, outcome: Outcome) -> None:
    """An incident opened or resolved is a line at INFO; an occurrence (a burst is thousands)
    or an event applied before is one at DEBUG."""
    if outcome.incident_id is None:
        return
    with bind(incident_id=outcome.incident_id):
        log.log(
            logging.INFO if told(outcome) else logging.DEBUG,
            "incident %s: %s for %s (%s)",
            outcome.incident_id,
            outcome.message,
            event_id,
            trigger.key,
        )


def told(outcome: Outcome) -> bool:
    """Whether `log_outcome` writes the outcome at INFO: the event's line for whoever follows
    it, which the router does not repeat (handlers/dispatch.py)."""
    changed = outcome.changed and outcome.message != OCCURRENCE
    return outcome.incident_id is not None and changed


def _add_occurrence(conn: Connection, row: Any, trigger: Trigger, event_id: str) -> Outcome:
    sql = _sql()
    params: dict[str, Any] = {"p_id": row.id, "p_now": utcnow()}
    if trigger.summary:  # the latest occurrence says most, when it says anything
        # ...and its links point at it, not at the first occurrence.
        links = [{"label": item.label, "url": item.url} for item in trigger.links]
        values = {"p_summary": trigger.summary, "p_links": links}
        conn.execute(sql.occurrence_latest if links else sql.occurrence_summary, params | values)
    else:
        conn.execute(sql.occurrence, params)
    # Coalesced: one pending message update, however many occurrences arrive meanwhile.
    deliver = rearm(conn, row.id, "slack.update", f"slack.update:{row.id}", cause=event_id)
    return Outcome(row.id, True, row.status, OCCURRENCE, deliver)


@dataclass(frozen=True)
class _Statements:
    seen: Any
    live: Any
    occurrence: Any
    occurrence_summary: Any
    occurrence_latest: Any


@functools.cache
def _sql() -> _Statements:
    """The statements every occurrence runs, built once: building a SQLAlchemy statement
    costs more Python than running it, and a burst of occurrences made the worker CPU-bound
    on exactly that."""
    occurrence = update(incidents).where(incidents.c.id == bindparam("p_id"))
    counted = {
        "occurrences": incidents.c.occurrences + 1,
        "last_seen": bindparam("p_now"),
        "updated_at": bindparam("p_now"),
        "revision": incidents.c.revision + 1,
    }
    live = (incidents.c.key == bindparam("p_key")) & (incidents.c.status != "resolved")
    return _Statements(
        seen=select(incident_events.c.incident_id).where(
            incident_events.c.event_id == bindparam("p_event")
        ),
        # FOR NO KEY UPDATE on PostgreSQL (as `locked`); SQLite has one writer anyway.
        live=select(incidents).where(live).with_for_update(key_share=True),
        occurrence=occurrence.values(**counted),
        occurrence_summary=occurrence.values(**counted, summary=bindparam("p_summary")),
        occurrence_latest=occurrence.values(
            **counted, summary=bindparam("p_summary"), links=bindparam("p_links", type_=JSONType)
        ),
    )


def _open(
    conn: Connection, ctx: WorkflowContext, cause: str, trigger: Trigger, *, event: bool = True
) -> Outcome:
    """Open an incident for `trigger`. `cause` names what opened it: a stored event (linked
    to the incident, and failed if a Slack call it owes dies) or, with `event=False`, the
    hub itself (a health check)."""
    rows = opening(ctx, cause, trigger, event=event)
    write_openings(conn, [rows])
    return rows.outcome


def write_openings(conn: Connection, opened: list[Opening]) -> None:
    """Openings' rows, one statement per table; the incidents first: the rest refer to them."""
    insert_rows(conn, incidents, [rows.incident for rows in opened])
    insert_rows(conn, incident_events, [rows.link for rows in opened if rows.link is not None])
    insert_rows(conn, timeline, [rows.timeline for rows in opened])
    insert_rows(conn, effects, [effect for rows in opened for effect in rows.effects])


@dataclass(frozen=True)
class Opening:
    """The rows an incident's opening writes, and its outcome: written at once by `_open`,
    or with other openings' in one statement per table (handlers/triggers/opens.py)."""

    incident: dict[str, Any]
    link: dict[str, Any] | None
    timeline: dict[str, Any]
    effects: list[dict[str, Any]]

    @property
    def outcome(self) -> Outcome:
        return Outcome(self.incident["id"], True, IncidentStatus.OPEN, "opened", deliver=True)


def opening(ctx: WorkflowContext, cause: str, trigger: Trigger, *, event: bool = True) -> Opening:
    event_id = cause if event else None
    now = utcnow()
    route = trigger.route or default_route(ctx)
    silence_id, until = route.silence if route.silence is not None else (None, None)
    incident = order.incident_row(trigger, IncidentStatus.OPEN, now) | {
        "channels": list(route.channels),
        "github_repo": route.repo,
        "mention": route.mention,
        "rule": route.rule,
        "silence_id": silence_id,
        "silenced_until": until,
    }
    incident_id = incident["id"]
    link = None
    if event_id is not None:
        link = {"event_id": event_id, "incident_id": incident_id, "at": now}
    detail = trigger.title + (f" (silenced by {silence_id} until {until:%Y-%m-%d %H:%M} UTC)"
                              if until is not None else "")  # fmt: skip
    entry = timeline_row(incident_id, actor=trigger.actor, action="opened", detail=detail,
                         dedupe=cause)  # fmt: skip
    # A silenced incident's announcements wait for the silence to end (hub/rules/silences.py).
    owed = [effect_row(incident_id, "slack.post", f"slack.post:{incident_id}", cause=event_id,
                       not_before=until)]  # fmt: skip
    for channel in route.channels[1:]:
        dedupe = f"slack.post:{incident_id}:{channel}"
        owed.append(effect_row(incident_id, "slack.post", dedupe, payload={"channel": channel},
                               cause=event_id, not_before=until))  # fmt: skip
    if ctx.github is not None and route.repo:
        owed.append(effect_row(incident_id, "github.issue", f"github.issue:{incident_id}",
                               cause=event_id, not_before=until))  # fmt: skip
    return Opening(incident, link, entry, owed)


def default_route(ctx: WorkflowContext) -> Route:
    """Where an incident goes when no rule says: the rules file's defaults, then settings."""
    defaults, settings = ctx.ruleset.defaults, ctx.settings
    channel = defaults.slack_channel or settings.slack_incident_channel
    repo = defaults.github_repo or settings.github_incident_repo
    return Route((channel,), repo, settings.slack_oncall, None)
