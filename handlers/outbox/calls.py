"""What a performer answers (done, or wait this long) and how it makes a counted call:
shared by the Slack and GitHub performers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from handlers.context import WorkflowContext
from integrations.outbound import RateLimited


@dataclass(frozen=True)
class Done:
    incident_values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Wait:
    seconds: float


Perform = Callable[[WorkflowContext, Any, Any, bool], "Done | Wait"]
T = TypeVar("T")
P = ParamSpec("P")


def called(
    ctx: WorkflowContext,
    target: str,
    method: str,
    call: Callable[P, T],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """`call(*args, **kwargs)`, counted by target and method. Counted here rather than in
    the clients, which stay free of the hub; a lookup that pages counts once."""
    ctx.metrics.call(target, method)
    try:
        return call(*args, **kwargs)
    except RateLimited:
        ctx.metrics.rate_limited(target, method)
        raise


def held_back(incident: Any) -> bool:
    """Opened under a silence and never posted: a resolve before the silence ended leaves
    nothing to announce, update or reply to."""
    return bool(incident.silence_id) and not incident.slack_ts
