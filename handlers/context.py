"""What a workflow may use. Built once per worker process by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from hub.config import Settings
from hub.events.store import EventStore
from hub.observability.worker_metrics import WorkerMetrics
from hub.ratelimits.outbound import Limits, LocalLimits
from hub.rules.state import BUILTIN, RuleSet, RulesInForce
from hub.runtime.queue import EventQueue

if TYPE_CHECKING:  # only the type: the SDKs load where clients are built (hub.container)
    from integrations.github_api import IssueTracker
    from integrations.slack_api import SlackClient
    from integrations.stripe_api import StripeReader


@dataclass(frozen=True)
class WorkflowContext:
    settings: Settings
    engine: Engine
    store: EventStore
    queue: EventQueue
    limits: Limits = field(default_factory=LocalLimits)
    # None: no token configured. Slack messages then go to the log; GitHub is skipped.
    slack: SlackClient | None = None
    github: IssueTracker | None = None
    # None: no HUB_STRIPE_API_KEY. Stripe workflows then decide from the event alone.
    stripe: StripeReader | None = None
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    # None: no rules file machinery (tests of single workflows): the built-in catalogue.
    rules: RulesInForce | None = None

    @property
    def ruleset(self) -> RuleSet:
        """The rules in force now: read once per batch, since a reload swaps them whole."""
        return self.rules.current if self.rules is not None else BUILTIN


@dataclass(frozen=True)
class Ran:
    """What a workflow says of a run that changed nothing on purpose. `stale`: the event was
    older than what its incident already reflected; `detail` names what superseded it."""

    outcome: str
    detail: str
    rule: str | None = None  # the routing rule behind it (`suppressed`)


# Workflows take an event id, never a payload: what they read is what was stored. None: ran.
Workflow = Callable[[WorkflowContext, str], Ran | None]
