"""What a workflow may use. Built once per worker process by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from hub.config import Settings
from hub.queue import EventQueue
from hub.store import EventStore


@dataclass(frozen=True)
class WorkflowContext:
    settings: Settings
    engine: Engine
    store: EventStore
    queue: EventQueue


# Workflows take an event id, never a payload: what they read is what was stored.
Workflow = Callable[[WorkflowContext, str], None]
