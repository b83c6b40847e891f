"""What one event says about an incident, decided from its payload alone.

A trigger function (in billing, delivery, security) reads a decoded payload and returns a
Trigger or None; the workflow applies it (handlers.triggers.apply). Keeping the decision a pure
function of the payload makes the catalogue testable without a database or Slack."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Severity(StrEnum):
    SEV1 = "sev1"  # customer money or production down: page now
    SEV2 = "sev2"
    SEV3 = "sev3"
    SEV4 = "sev4"  # informational


class Change(StrEnum):
    OPEN = "open"  # open an incident for `key`, or add an occurrence to the open one
    RESOLVE = "resolve"  # resolve the open incident for `key`, if there is one


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Trigger:
    change: Change
    # Grouping key: events with the same key while an incident is open add occurrences.
    # Namespaced by source, e.g. "stripe:dispute:dp_123", "github:ci:octo/app:CI".
    key: str
    # Who or what caused the change, for the timeline: "stripe", "github:octocat".
    actor: str
    # Only used when the change opens an incident (ignored for RESOLVE).
    title: str = ""
    severity: Severity = Severity.SEV3
    summary: str = ""
    links: tuple[Link, ...] = field(default_factory=tuple)
    # One line for the timeline / thread, e.g. "CI passed again on main (run #42)".
    note: str = ""
    # The provider's own notion of "newer" for the thing `key` is about, taken from the
    # payload, never from when it arrived: (run_number, run_attempt) for a CI run, a status
    # rank for a Stripe dispute, an epoch-second timestamp the provider set. A change whose
    # version is not above what the key already reflects is stale: providers deliver out of
    # order and more than once, and replays send old events again on purpose. None: the
    # payload carries no order (grouped occurrences), so the change applies as it arrives.
    version: Version | None = None
    # Where and how it is raised, as the routing rules decided (handlers/triggers/ruled.py);
    # empty: the defaults. Only used when the change opens an incident.
    route: Route | None = None


@dataclass(frozen=True)
class Route:
    channels: tuple[str, ...]  # Slack channels by configured name; the first holds the message
    repo: str | None  # GitHub repository for the tracking issue, None: no issue
    mention: str | None  # who an escalation pings
    rule: str | None  # the rules that decided, comma-separated; None: the catalogue alone
    # Opened under a silence: (its id, when it ends); nothing is posted before then.
    silence: tuple[str, datetime] | None = None


# Compared as a tuple: the first element that differs decides.
Version = tuple[int, ...]


def incident_facts(trigger: Trigger) -> dict[str, str]:
    """What a routing rule's `where` sees of a decision, as `incident`."""
    return {"key": trigger.key, "title": trigger.title, "severity": str(trigger.severity),
            "change": str(trigger.change)}  # fmt: skip
