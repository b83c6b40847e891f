"""`hub rules test` and `POST /admin/rules/test`: a rules file tried on the hub's own history.

Stored events are run, oldest first, through the catalogue (decided from each payload alone,
as without HUB_STRIPE_API_KEY: nothing is fetched, nothing is written) and then through the
proposed rules and the rules in force. Per rule: how many events it applied to and how many
`where` misses; per side: the incidents that would open (a key opens once until something
resolves it), the Slack posts by channel and the GitHub issues by repository; and the events
the two sides decide differently. Silences are not applied: they are windows, not routes."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from hub.config import Settings
from hub.events.ids import id_floor
from hub.events.models import utcnow
from hub.events.store import event_bodies, events, with_bodies
from hub.rules.compiled import TemplateFailed
from hub.rules.judge import Verdict, judge
from hub.rules.state import RuleSet
from integrations.payloads import decode

# The catalogue's decision for (provider, type, payload): its incident facts (key, title,
# severity, change), None for nothing, or a string saying why it cannot tell offline.
Catalogue = Callable[[str, str, Mapping[str, Any]], "Mapping[str, Any] | str | None"]
MAX_EVENTS = 20_000
SHOWN_DIFFERENCES = 50
_SPAN = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
MAX_SPAN = timedelta(days=3650)


def parse_span(text: str) -> timedelta:
    """`7d`, `12h`, `90m`, `1w2d`: how far back to look (or how long a silence lasts)."""
    found = _SPAN.findall(text.strip().lower())
    if not found or _SPAN.sub("", text.strip().lower()).strip():
        raise ValueError(f"not a span of time: {text!r} (e.g. 7d, 12h, 90m)")
    seconds = sum(int(n) * _UNITS[u] for n, u in found)
    # Bounded: "1000000000d" overflowed timedelta (a 500), and now minus a few million days
    # overflows the date.
    if seconds > MAX_SPAN.total_seconds():
        raise ValueError(f"span of time too long: {text!r} (at most {MAX_SPAN.days}d)")
    return timedelta(seconds=seconds)


@dataclass
class Side:
    """What one set of rules would do over the events."""

    incidents: int = 0
    suppressed: int = 0
    resolves: int = 0
    slack: Counter[str] = field(default_factory=Counter)
    github: Counter[str] = field(default_factory=Counter)
    errors: int = 0  # templates that raised: those events would fail (and be retried)
    live: set[str] = field(default_factory=set)

    def as_json(self) -> dict[str, Any]:
        return {"incidents": self.incidents, "suppressed": self.suppressed,
                "resolves": self.resolves, "slack_posts": dict(sorted(self.slack.items())),
                "github_issues": dict(sorted(self.github.items())),
                "template_errors": self.errors}  # fmt: skip


@dataclass
class Preview:
    source: str | None
    hash: str | None
    since: datetime
    events: int = 0
    undecidable: int = 0  # thin events: their object would have to be fetched
    truncated: bool = False
    rules: list[dict[str, Any]] = field(default_factory=list)
    proposed: Side = field(default_factory=Side)
    in_force: Side = field(default_factory=Side)
    changed: int = 0
    differences: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "hash": self.hash, "since": self.since.isoformat(),
                "events": self.events, "undecidable": self.undecidable,
                "truncated": self.truncated, "rules": self.rules,
                "proposed": self.proposed.as_json(), "in_force": self.in_force.as_json(),
                "changed": self.changed, "differences": self.differences}  # fmt: skip


@dataclass(frozen=True)
class Scope:
    since: timedelta = timedelta(days=7)
    provider: str | None = None
    type: str | None = None
    limit: int = MAX_EVENTS


def preview(
    engine: Engine,
    settings: Settings,
    catalogue: Catalogue,
    sides: tuple[RuleSet, RuleSet],
    scope: Scope,
) -> Preview:
    """`sides` = (proposed, in force)."""
    proposed, in_force = sides
    since = utcnow() - scope.since
    out = Preview(proposed.source, proposed.hash, since)
    matched: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    for event_id, provider, type_, payload in _stored(engine, since, scope, out):
        facts = catalogue(provider, type_, payload)
        if isinstance(facts, str):
            out.undecidable += 1
            continue
        out.events += 1
        said = []
        for rules, side in ((proposed, out.proposed), (in_force, out.in_force)):
            verdict = _judge(rules, provider, type_, payload, facts, side=side)
            if rules is proposed and verdict is not None:
                matched.update(verdict.decided_by)
                missed.update(m.rule for m in verdict.misses)
            said.append(_tally(settings, rules, facts, verdict, side))
        if said[0] != said[1]:
            out.changed += 1
            if len(out.differences) < SHOWN_DIFFERENCES:
                out.differences.append({"event_id": event_id, "kind": f"{provider} {type_}",
                                        "proposed": said[0], "in_force": said[1]})  # fmt: skip
    out.rules = [
        {"name": r.name, "action": r.spec.action, "line": r.line, "matched": matched[r.name],
         "misses": missed[r.name]}
        for r in proposed.rules
    ]  # fmt: skip
    return out


def _stored(engine: Engine, since: datetime, scope: Scope, out: Preview) -> Any:
    stmt = select(events.c.id, events.c.provider, events.c.type, events.c.headers,
                  event_bodies.c.body).select_from(with_bodies).where(
        events.c.id >= id_floor(since))  # fmt: skip
    if scope.provider:
        stmt = stmt.where(events.c.provider == scope.provider)
    if scope.type:
        stmt = stmt.where(events.c.type == scope.type)
    stmt = stmt.order_by(events.c.id).limit(scope.limit + 1)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    if len(rows) > scope.limit:
        out.truncated, rows = True, rows[: scope.limit]
    for row in rows:
        if not row.body:  # emptied by retention: nothing to decide from
            continue
        try:
            payload = decode(row.headers or {}, bytes(row.body))
        except ValueError:
            continue
        yield row.id, row.provider, row.type, payload


def _judge(
    rules: RuleSet, provider: str, type_: str, payload: Any, facts: Any, *, side: Side
) -> Verdict | None:
    try:
        return judge(rules.rules, rules.defaults, provider, type_, payload, incident=facts)
    except TemplateFailed:
        side.errors += 1
        return None


def _tally(
    settings: Settings, rules: RuleSet, facts: Any, verdict: Verdict | None, side: Side
) -> str:
    """Count what this side does with the event; one line saying it, to compare sides."""
    if verdict is None:
        return "template error"
    raised = verdict.raised
    change, key = (raised.change, raised.key) if raised else (None, None)
    if raised is None and facts is not None:
        change, key = str(facts.get("change")), str(facts.get("key"))
    if key is None:
        return "-"
    if change == "resolve":
        side.resolves += key in side.live
        side.live.discard(key)
        return f"resolve {key}"
    if verdict.suppressed_by is not None:
        side.suppressed += 1
        return f"suppressed by {verdict.suppressed_by}"
    channels = verdict.channels or (
        rules.defaults.slack_channel or settings.slack_incident_channel,
    )
    repo = verdict.repo or rules.defaults.github_repo or settings.github_incident_repo
    if settings.github_token is None:  # no token: nothing would be opened anywhere
        repo = None
    severity = verdict.severity or (raised.severity if raised else str(facts.get("severity")))
    if key not in side.live:
        side.live.add(key)
        side.incidents += 1
        side.slack.update(channels)
        if repo:
            side.github[repo] += 1
    where = ", ".join(channels) + (f" + {repo}" if repo else "")
    return f"open {key} ({severity}) -> {where}"
