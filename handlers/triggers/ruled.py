"""The catalogue's decision after the routing rules and silences (hub/rules/).

A trigger workflow decides from the payload (handlers/billing.py, delivery.py, security.py);
the rules then route, suppress or raise (hub/rules/judge.py), and an incident about to open
is checked against the active silences. The rules in force are read once per batch: a
reload swaps them whole between batches, never inside one."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

from handlers.context import Ran, WorkflowContext
from handlers.triggers.apply import default_route
from handlers.triggers.model import Change, Route, Severity, Trigger, incident_facts
from handlers.triggers.workflow import Decision, incident_workflow
from hub.rules import silences
from hub.rules.judge import Raised, Verdict, judge
from hub.rules.silences import SilenceRow
from hub.rules.state import RuleSet

SUPPRESSED = "suppressed"
ActiveSilences = Callable[[], list[SilenceRow]]


def raise_by_rule(payload: Mapping[str, object]) -> Trigger | None:
    """Events only routing rules handle (the catalogue has no workflow for their kind): what
    they raise is the rules' verdict alone."""
    return None


RULES_ONLY = incident_workflow(raise_by_rule)


def active_silences(ctx: WorkflowContext) -> ActiveSilences:
    """The active silences, read at most once (per batch), and only if an incident opens."""
    return functools.cache(lambda: silences.active(ctx.engine))


def judged(
    ctx: WorkflowContext,
    rules: RuleSet,
    event: tuple[str, str],
    payload: Mapping[str, Any],
    decision: Decision,
    *,
    held: ActiveSilences,
) -> Decision:
    """`decision` (the catalogue's, for the event of `event` = (provider, type)) as the rules
    and silences leave it."""
    if isinstance(decision, Ran):  # stale, unfetched: nothing to route
        return decision
    provider, type_ = event
    # No rules (the default): judge's verdict is nothing, and the facts are not built.
    incident = _facts(decision) if rules.rules else None
    verdict = judge(rules.rules, rules.defaults, provider, type_, payload, incident=incident)
    _count(ctx, verdict)
    trigger = decision if verdict.raised is None else _raised(verdict.raised, provider)
    if trigger is None:
        return None
    rule = ", ".join(verdict.decided_by) or None
    if verdict.suppressed_by is not None and trigger.change == Change.OPEN:
        detail = f"by rule {verdict.suppressed_by}: nothing raised for {trigger.key}"
        return Ran(SUPPRESSED, detail, rule=rule)
    if trigger.change == Change.RESOLVE:  # where it goes was fixed when it opened
        route = None if rule is None else dataclasses.replace(default_route(ctx), rule=rule)
        return _routed(trigger, route)
    route = _route(ctx, verdict, rule)
    if verdict.severity is not None:
        trigger = dataclasses.replace(trigger, severity=Severity(verdict.severity))
    silence = None
    if active := held():  # none active (the usual case): no facts to build
        facts = {"payload": payload, "provider": provider, "type": type_,
                 "incident": _facts(trigger)}  # fmt: skip
        silence = silences.matching(active, facts)
    if silence is not None:
        ctx.metrics.silenced()
        held_until = (silence.id, silence.ends_at)
        route = dataclasses.replace(route or default_route(ctx), silence=held_until)
    return _routed(trigger, route)


def _routed(trigger: Trigger, route: Route | None) -> Trigger:
    """`trigger` to go by `route` (None: the defaults, as a trigger without a route goes).
    Copied only when that changes it: a burst's every event is judged."""
    if route == trigger.route:
        return trigger
    return dataclasses.replace(trigger, route=route)


def _facts(decision: Decision) -> dict[str, Any] | None:
    """What a `where` sees of the catalogue's decision as `incident`."""
    return incident_facts(decision) if isinstance(decision, Trigger) else None


def _raised(raised: Raised, provider: str) -> Trigger:
    change = Change.OPEN if raised.change == "open" else Change.RESOLVE
    note = f"resolved by rule {raised.rule}" if change == Change.RESOLVE else ""
    return Trigger(change, raised.key, provider, raised.title, Severity(raised.severity),
                   raised.summary, note=note)  # fmt: skip


def _route(ctx: WorkflowContext, verdict: Verdict, rule: str | None) -> Route | None:
    """Where the verdict sends an incident; None: the defaults, nothing decided."""
    if rule is None and not (verdict.channels or verdict.repo or verdict.mention):
        return None
    default = default_route(ctx)
    return Route(
        verdict.channels or default.channels,
        verdict.repo or default.repo,
        verdict.mention or default.mention,
        rule,
    )


def _count(ctx: WorkflowContext, verdict: Verdict) -> None:
    for name in verdict.decided_by:
        ctx.metrics.rule_matched(name)
    for miss in verdict.misses:
        ctx.metrics.rule_missed(miss.rule)
