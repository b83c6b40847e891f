"""One event through the rules, top to bottom: what it raises, where, and which rule said so.

The catalogue (handlers/) decides first, from the payload: an incident to open or resolve, or
nothing. The rules then see that decision as `incident` and may
- `route` it: other Slack channel(s), GitHub repository, severity, who an escalation pings;
- `suppress` it: the event is processed and recorded as suppressed by the rule, nothing is
  raised (a resolve still goes through: suppressing it would strand an open incident);
- raise one with `incident`, for an event the catalogue left alone (`resolve_when` resolves
  the same key).
The first rule that applies decides, unless it says `continue: true`: then later rules apply
too (channels add up; severity, repository and mention stay as the first rule set them). A
`route` applies only to an event that raises something, and an `incident` only to one that
does not yet, so a catch-all route above does not shadow the incident rules below it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.rules.compiled import CompiledRule, LazyEnv, Miss, TemplateFailed, matches
from hub.rules.document import Defaults


@dataclass(frozen=True)
class Raised:
    """An incident change a rule makes: the key, title and summary rendered for the event."""

    change: str  # "open" | "resolve"
    key: str
    title: str
    summary: str
    severity: str
    rule: str


@dataclass(frozen=True)
class Verdict:
    decided_by: tuple[str, ...] = ()  # the rules that applied, in order
    suppressed_by: str | None = None
    channels: tuple[str, ...] = ()
    repo: str | None = None
    severity: str | None = None
    mention: str | None = None
    raised: Raised | None = None
    misses: tuple[Miss, ...] = ()


NOTHING = Verdict()


@dataclass
class _Tally:
    raises: bool  # the event raises something (the catalogue's decision or a rule's)
    decided_by: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)  # repo, severity, mention: first wins
    raised: Raised | None = None
    suppressed_by: str | None = None
    misses: list[Miss] = field(default_factory=list)

    def route(self, channel: str | None, **values: str | None) -> None:
        if channel and channel not in self.channels:
            self.channels.append(channel)
        for name, value in values.items():
            if value is not None:
                self.values.setdefault(name, value)

    def verdict(self) -> Verdict:
        return Verdict(
            tuple(self.decided_by), self.suppressed_by, tuple(self.channels),
            self.values.get("repo"), self.values.get("severity"), self.values.get("mention"),
            self.raised, tuple(self.misses),
        )  # fmt: skip


def judge(
    rules: tuple[CompiledRule, ...],
    defaults: Defaults,
    provider: str,
    type_: str,
    payload: Mapping[str, Any],
    *,
    incident: Mapping[str, Any] | None,
) -> Verdict:
    """The rules' verdict on one event. `incident`: the catalogue's decision (key, title,
    severity, change), or None. Raises TemplateFailed if an incident template does."""
    if not rules:
        return NOTHING
    facts: dict[str, Any] = {"payload": payload, "provider": provider, "type": type_}
    if incident is not None:
        facts["incident"] = dict(incident)
    env = LazyEnv(facts)
    tally = _Tally(raises=incident is not None)
    for rule in rules:
        resolving = False
        hit = _meets(rule, rule.match, facts, env, tally)
        if not hit and rule.resolve_when is not None:
            resolving = _meets(rule, rule.resolve_when, facts, env, tally)
        if not (hit or resolving) or not _apply(rule, resolving, defaults, facts, tally):
            continue
        tally.decided_by.append(rule.name)
        if tally.suppressed_by is not None or not rule.spec.continue_:
            break
    return tally.verdict()


def _meets(
    rule: CompiledRule, cond: Any, facts: Mapping[str, Any], env: Any, tally: _Tally
) -> bool:
    try:
        return matches(rule.name, cond, facts, env)
    except Miss as miss:
        tally.misses.append(miss)
        return False


def _apply(
    rule: CompiledRule, resolving: bool, defaults: Defaults, facts: Mapping[str, Any], t: _Tally
) -> bool:
    """Apply one matching rule's action; False when it does not apply to this event."""
    spec = rule.spec
    if spec.suppress is not None:
        t.suppressed_by = rule.name
        return True
    if spec.route is not None:
        if not t.raises:
            return False
        route = spec.route
        t.route(route.slack_channel, repo=route.github_repo, severity=route.severity,
                mention=route.mention)  # fmt: skip
        return True
    made = spec.incident
    if made is None or t.raises:
        return False
    text = {name: tpl.render(rule.name, rule.line, facts) for name, tpl in rule.templates.items()}
    if not text["key"]:
        raise TemplateFailed(f"rule {rule.name} ({rule.line}): key: rendered empty")
    severity = made.severity or defaults.severity
    change = "resolve" if resolving else "open"
    t.raised = Raised(change, text["key"], text["title"], text["summary"], severity, rule.name)
    t.raises = True
    t.route(made.slack_channel, repo=made.github_repo, mention=made.mention)
    return True
