"""Workflows about the hub's own connections to its senders."""

from __future__ import annotations

import logging

from handlers.context import WorkflowContext

log = logging.getLogger(__name__)


def acknowledge_ping(ctx: WorkflowContext, event_id: str) -> None:
    """GitHub sends `ping` when a hook is created: nothing to do but record that it worked."""
    log.info("GitHub webhook connected (event %s)", event_id)
