"""The catalogue's decision from a payload alone, for `hub rules test` (hub/rules/preview.py):
no database, no Slack, no Stripe. The composition root hands this to the admin API, which
does not import the workflows itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.routing_table import ROUTES
from handlers.triggers.model import Trigger, incident_facts
from handlers.triggers.workflow import TriggerWorkflow

NEEDS_FETCH = "a thin event: its object is fetched from Stripe when it runs"


def catalogue_decision(
    provider: str, type_: str, payload: Mapping[str, Any]
) -> dict[str, Any] | str | None:
    """What the catalogue raises for this event (the `incident` a rule sees), None for
    nothing, or why it cannot say without calling out."""
    for workflow in ROUTES.get((provider, type_), ()):
        if not isinstance(workflow, TriggerWorkflow):
            continue  # chatops and the like: they act on incidents, they raise none
        if workflow.offline is None:
            return NEEDS_FETCH
        try:
            trigger = workflow.offline(payload)
        except ValueError:  # a payload the workflow would fail on: it raises nothing
            return None
        if isinstance(trigger, Trigger):
            return incident_facts(trigger)
    return None
