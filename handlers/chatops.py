"""Responders working incidents from Slack: the message's buttons and `/incident`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from handlers.context import WorkflowContext
from handlers.outbox.performers import view_of
from handlers.triggers.apply import apply_trigger, change_status
from handlers.triggers.model import Change, Severity, Trigger
from handlers.triggers.workflow import load_payload
from hub.incidents.changes import (
    VERBS,
    StatusChange,
    effects,
    incidents,
    owe,
    schedule_delivery,
)
from hub.runtime.db import write
from integrations.slack_messages import BUTTON_ACTIONS, incident_list

log = logging.getLogger(__name__)

USAGE = (
    "Usage: `/incident list` · `/incident open <title>` · `/incident ack <id>` · "
    "`/incident resolve <id>` · `/incident reopen <id>`"
)


def _who(user: object) -> str:
    """`<@U123>` renders as the person's name in Slack; the timeline keeps the id too."""
    if isinstance(user, Mapping) and isinstance(user.get("id"), str):
        return f"<@{user['id']}>"
    return "someone in Slack"


def apply_incident_button(ctx: WorkflowContext, event_id: str) -> None:
    """Acknowledge / Resolve pressed on an incident message."""
    payload = load_payload(ctx, event_id)
    actions = payload.get("actions")
    if not isinstance(actions, list):
        return
    for action in actions:
        if not isinstance(action, Mapping):
            continue
        verb = BUTTON_ACTIONS.get(str(action.get("action_id")))
        incident_id = action.get("value")
        if verb is None or not isinstance(incident_id, str):
            continue  # some other app's button, or one the hub never sent
        change = StatusChange(VERBS[verb], _who(payload.get("user")), f"{event_id}:{incident_id}")
        outcome = change_status(ctx, incident_id, change)
        if not outcome.changed:
            _answer(ctx, event_id, payload, f"Nothing changed: {outcome.message}.")


def run_incident_command(ctx: WorkflowContext, event_id: str) -> None:
    """`/incident list|open|ack|resolve|reopen ...`, answered through the response_url."""
    payload = load_payload(ctx, event_id)
    words = str(payload.get("text", "")).strip().split(maxsplit=1)
    verb = words[0].lower() if words else "help"
    rest = words[1].strip() if len(words) > 1 else ""
    actor = f"<@{payload['user_id']}>" if isinstance(payload.get("user_id"), str) else "someone"
    if verb == "list":
        _answer_list(ctx, event_id, payload)
    elif verb == "open" and rest:
        trigger = Trigger(Change.OPEN, f"slack:manual:{event_id}", actor, rest, Severity.SEV3,
                          f"Opened from Slack by {actor}.")  # fmt: skip
        outcome = apply_trigger(ctx, event_id, trigger)
        _answer(ctx, event_id, payload, f"Opened {outcome.incident_id}: {rest}")
    elif verb in VERBS and rest:
        outcome = change_status(ctx, rest.split()[0], StatusChange(VERBS[verb], actor, event_id))
        text = outcome.message if outcome.changed else f"Nothing changed: {outcome.message}."
        _answer(ctx, event_id, payload, text)
    else:
        _answer(ctx, event_id, payload, USAGE)


def _answer_list(ctx: WorkflowContext, event_id: str, payload: Mapping[str, Any]) -> None:
    live = (
        select(incidents)
        .where(incidents.c.status != "resolved")
        .order_by(incidents.c.id.desc())
        .limit(50)
    )
    with ctx.engine.connect() as conn:
        rows = conn.execute(live).all()
    message = incident_list([view_of(ctx, row) for row in rows])
    _respond(ctx, event_id, payload, message)


def _answer(
    ctx: WorkflowContext,
    event_id: str,
    payload: Mapping[str, Any],
    text: str,
) -> None:
    message = {"response_type": "ephemeral", "text": text}
    _respond(ctx, event_id, payload, message)


def _respond(
    ctx: WorkflowContext,
    event_id: str,
    payload: Mapping[str, Any],
    message: dict[str, Any],
) -> None:
    url = payload.get("response_url")
    if not isinstance(url, str):
        log.info("no response_url for %s: %s", event_id, message.get("text"))
        return
    # Keyed by the command's event: a retried workflow answers once. Not tied to the
    # incident's lane, so the answer does not queue behind its Slack message updates.
    with write(ctx.engine) as conn:
        dedupe = f"slack.respond:{event_id}"
        if conn.execute(select(effects.c.id).where(effects.c.dedupe == dedupe)).first() is None:
            owe(conn, None, "slack.respond", dedupe,
                payload={"response_url": url, "message": message})  # fmt: skip
    schedule_delivery(ctx.queue, None)
