"""What one hub process is made of, built from settings. `hub.bootstrap` assembles it into an
app; worker processes and the CLI use it directly."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dramatiq
from sqlalchemy import Engine

from hub.config import Settings
from hub.events.store import EventStore, Timing
from hub.observability.metrics import Metrics, build_metrics
from hub.ratelimits.outbound import Limits, build_limits
from hub.rules.preview import Catalogue
from hub.rules.state import RulesInForce
from hub.runtime.db import make_engine
from hub.runtime.queue import EventQueue, Waiting, build_broker
from integrations.base import Endpoint
from integrations.registry import build_endpoints

if TYPE_CHECKING:
    from integrations.github_api import IssueTracker
    from integrations.slack_api import SlackClient
    from integrations.stripe_api import StripeReader


@dataclass
class Container:
    settings: Settings
    engine: Engine
    store: EventStore
    broker: dramatiq.Broker
    events: EventQueue
    endpoints: dict[str, Endpoint]
    limits: Limits
    metrics: Metrics
    rules: RulesInForce
    # The catalogue's offline decisions, for `hub rules test` and /admin/rules/test: the
    # composition root gives the workflows' (hub.bootstrap); this layer may not import them.
    catalogue: Callable[[], Catalogue] = lambda: _nothing_raised

    @property
    def embedded(self) -> bool:
        """No broker configured: the workers run inside the API process."""
        return not self.settings.redis_url


def _nothing_raised(_provider: str, _type: str, _payload: Mapping[str, Any]) -> None:
    return None


def build(settings: Settings | None = None, *, waiting: Waiting | None = None) -> Container:
    """`waiting`: given by an embedded hub's worker process (hub.workers), whose count of
    unfinished messages the API process reads."""
    settings = settings or Settings()
    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    timing = Timing(
        received_s=settings.requeue_received_after_s,
        queued_s=settings.requeue_queued_after_s,
        lease_s=settings.processing_lease_s,
    )
    broker = build_broker(settings, waiting)
    events = EventQueue(broker, settings.queue_name)
    return Container(
        settings=settings,
        engine=engine,
        store=EventStore(engine, timing),
        broker=broker,
        events=events,
        endpoints=build_endpoints(settings.webhook_secrets(), settings.signature_tolerance_s),
        limits=build_limits(settings.redis_url, settings.redis_namespace),
        metrics=build_metrics(settings, engine, events),
        rules=RulesInForce(settings.rules_file, engine, settings.rules_poll_s),
    )


# A placeholder, never requested: the client is lazy, and no incident is given this repo.
UNSET_REPO = "-/-"


@dataclass(frozen=True)
class Outbound:
    slack: SlackClient | None
    github: IssueTracker | None
    stripe: StripeReader | None


def outbound_clients(settings: Settings) -> Outbound:
    """The workers' Slack, GitHub and Stripe clients; None where no token (or repo, or key)
    is configured. Imported here, not at the top: API processes never load the SDKs."""
    from integrations.github_api import IssueTracker
    from integrations.slack_api import SlackClient

    slack = None
    if settings.slack_bot_token is not None:
        slack = SlackClient(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)
    github = None
    if settings.github_token is not None:
        # The default repository may be unset: the rules name the repositories then.
        github = IssueTracker(
            settings.github_token.get_secret_value(),
            settings.github_api_url,
            settings.github_incident_repo or UNSET_REPO,
        )
    return Outbound(slack, github, stripe_reader(settings))


def stripe_reader(settings: Settings) -> StripeReader | None:
    if settings.stripe_api_key is None:
        return None
    from integrations.stripe_api import StripeReader

    return StripeReader(settings.stripe_api_key.get_secret_value(), settings.stripe_api_base)
