"""GitHub security alerts, and issues people label `incident`.

Security alerts open one incident per alert, with a severity taken from the alert; the alert's
closing actions (fixed, dismissed, resolved) resolve it and its reopening actions open it
again, under the same key. Issues labelled `incident` are mirrored as incidents and resolved
when closed, except the hub's own tracking issues (label `hub-incident`, or a `<!-- hub:`
marker in the body), which would otherwise be mirrored back in a loop.

Versions (handlers.triggers.model.Trigger.version) are `(epoch seconds, phase)`: the time
GitHub says the alert or issue last changed, then 0 for an opening and 1 for a closing action,
so that a close stamped in the same second as the open (Dependabot's auto-dismiss rules act at
creation) is still the newer of the two."""

from __future__ import annotations

import re
from collections.abc import Mapping

from handlers.triggers import alerts
from handlers.triggers.alerts import CLOSING, LEVELS, OPENING, REOPEN_ACTIONS, RULE_LEVELS
from handlers.triggers.model import Change, Link, Severity, Trigger, Version
from handlers.triggers.payload import (
    first_line,
    github_actor,
    names,
    opt_bool,
    opt_epoch,
    opt_str,
    req_int,
    req_str,
    shorten,
)

INCIDENT_LABEL = "incident"
HUB_LABEL = "hub-incident"
HUB_MARKER = "<!-- hub:"
SEVERITY_LABEL = re.compile(r"^sev[-_ ]?([1-4])$")


def open_code_scanning_incident(payload: Mapping[str, object]) -> Trigger:
    """`code_scanning_alert.created` (and `reopened`, `reopened_by_user`, which open the same
    key again): severity from the rule's security severity level."""
    repo = req_str(payload, "repository.full_name")
    number = req_int(payload, "alert.number")
    rule = (
        opt_str(payload, "alert.rule.description")
        or opt_str(payload, "alert.rule.name")
        or opt_str(payload, "alert.rule.id")
        or "unnamed rule"
    )
    level = opt_str(payload, "alert.rule.security_severity_level")
    rule_severity = opt_str(payload, "alert.rule.severity")
    severity = (
        alerts.level(level, LEVELS) or alerts.level(rule_severity, RULE_LEVELS) or Severity.SEV3
    )
    details = [f"{opt_str(payload, 'alert.tool.name') or 'Code scanning'} alert #{number}"]
    details.append(f"severity {level or rule_severity or 'unknown'}")
    location = alerts.location(payload)
    if location:
        details.append(f"at {location}")
    return _alert(
        payload,
        key=alert_key("code-scanning", repo, number),
        title=f"Code scanning: {shorten(rule, 120)} in {repo}",
        severity=severity,
        summary=" ".join(details) + ".",
        label=f"Code scanning alert #{number}",
    )


def open_secret_leak_incident(payload: Mapping[str, object]) -> Trigger:
    """`secret_scanning_alert.created` (and `reopened`): a secret was committed; always sev1
    (rotate it)."""
    repo = req_str(payload, "repository.full_name")
    number = req_int(payload, "alert.number")
    kind = (
        opt_str(payload, "alert.secret_type_display_name")
        or opt_str(payload, "alert.secret_type")
        or "secret"
    )
    details = [f"Secret scanning alert #{number}: {kind}."]
    validity = opt_str(payload, "alert.validity")
    if validity is not None:
        details.append(f"Validity: {validity}.")
    if opt_bool(payload, "alert.push_protection_bypassed") is True:
        details.append("Push protection was bypassed.")
    if opt_bool(payload, "alert.publicly_leaked") is True:
        details.append("Also leaked publicly.")
    details.append("Revoke and rotate the secret.")
    return _alert(
        payload,
        key=alert_key("secret-scanning", repo, number),
        title=f"Secret leaked: {kind} in {repo}",
        severity=Severity.SEV1,
        summary=" ".join(details),
        label=f"Secret scanning alert #{number}",
    )


def open_vulnerable_dependency_incident(payload: Mapping[str, object]) -> Trigger:
    """`dependabot_alert.created` (and `reopened`, `auto_reopened`, `reintroduced`): severity
    from the advisory (or the vulnerability)."""
    repo = req_str(payload, "repository.full_name")
    number = req_int(payload, "alert.number")
    package = (
        opt_str(payload, "alert.dependency.package.name")
        or opt_str(payload, "alert.security_vulnerability.package.name")
        or "a dependency"
    )
    advisory = (
        opt_str(payload, "alert.security_advisory.cve_id")
        or opt_str(payload, "alert.security_advisory.ghsa_id")
        or "advisory"
    )
    level = opt_str(payload, "alert.security_advisory.severity") or opt_str(
        payload, "alert.security_vulnerability.severity"
    )
    return _alert(
        payload,
        key=alert_key("dependabot", repo, number),
        title=f"Vulnerable dependency: {package} ({advisory}) in {repo}",
        severity=alerts.level(level, LEVELS) or Severity.SEV3,
        summary=alerts.dependency_summary(payload, number, level),
        label=f"Dependabot alert #{number}",
    )


def resolve_code_scanning_incident(payload: Mapping[str, object]) -> Trigger:
    """`code_scanning_alert.fixed` (no longer found by an analysis) and `closed_by_user`
    (dismissed by someone): the note says which, with the commit or who and why."""
    repo = req_str(payload, "repository.full_name")
    number = req_int(payload, "alert.number")
    label = f"Code scanning alert #{number}"
    if opt_str(payload, "action") == "fixed":
        # `commit_oid` is the analysed commit that no longer has the alert.
        commit = (opt_str(payload, "commit_oid") or "")[:7]
        note = f"{label} fixed in {commit}" if commit else f"{label} fixed"
    else:
        note = f"{label} {alerts.dismissal(payload)}"
    return _alert_closed(payload, alert_key("code-scanning", repo, number), note)


def resolve_secret_leak_incident(payload: Mapping[str, object]) -> Trigger:
    """`secret_scanning_alert.resolved`: the note names who resolved it and the resolution
    (revoked, false_positive, wont_fix, used_in_tests, ...)."""
    repo = req_str(payload, "repository.full_name")
    number = req_int(payload, "alert.number")
    who = opt_str(payload, "alert.resolved_by.login") or opt_str(payload, "sender.login")
    note = f"Secret scanning alert #{number} resolved" + (f" by {who}" if who else "")
    resolution = opt_str(payload, "alert.resolution")
    if resolution is not None:
        note += f": {alerts.words(resolution)}"
    comment = opt_str(payload, "alert.resolution_comment")
    if comment is not None:
        note += f" ({first_line(comment, 120)})"
    return _alert_closed(payload, alert_key("secret-scanning", repo, number), note)


def resolve_vulnerable_dependency_incident(payload: Mapping[str, object]) -> Trigger:
    """`dependabot_alert.fixed`, `dismissed` and `auto_dismissed` (by an auto-triage rule)."""
    repo = req_str(payload, "repository.full_name")
    number = req_int(payload, "alert.number")
    label = f"Dependabot alert #{number}"
    action = opt_str(payload, "action")
    if action == "fixed":
        note = f"{label} fixed"
    elif action == "auto_dismissed":
        note = f"{label} auto-dismissed"
    else:
        note = f"{label} {alerts.dismissal(payload)}"
    return _alert_closed(payload, alert_key("dependabot", repo, number), note)


def mirror_incident_issue(payload: Mapping[str, object]) -> Trigger | None:
    """`issues.labeled` with `incident` opens an incident mirroring the issue (sev3, or the
    issue's `sev1`..`sev4` label); `issues.closed` on such an issue resolves it."""
    action = opt_str(payload, "action")
    if action not in ("labeled", "closed") or _is_hub_issue(payload):
        return None
    labels = names(payload, "issue.labels")
    if action == "labeled":
        added = (opt_str(payload, "label.name") or "").strip().lower()
        if added != INCIDENT_LABEL or opt_str(payload, "issue.state") == "closed":
            return None
        return _open_from_issue(payload, labels)
    if INCIDENT_LABEL not in labels:
        return None
    repo = req_str(payload, "repository.full_name")
    number = req_int(payload, "issue.number")
    return Trigger(
        change=Change.RESOLVE,
        key=issue_key(repo, number),
        actor=github_actor(payload),
        note=f"Issue {repo}#{number} closed",
        # The issue's own updated_at; closing ranks above labelling within the same second.
        version=_issue_version(payload, CLOSING),
    )


def alert_key(kind: str, repo: str, number: int) -> str:
    return f"github:{kind}:{repo}:{number}"


def issue_key(repo: str, number: int) -> str:
    return f"github:issue:{repo}:{number}"


def _alert(
    payload: Mapping[str, object],
    *,
    key: str,
    title: str,
    severity: Severity,
    summary: str,
    label: str,
) -> Trigger:
    url = opt_str(payload, "alert.html_url")
    reopened = REOPEN_ACTIONS.get(opt_str(payload, "action") or "")
    if reopened is not None:
        who = opt_str(payload, "sender.login")
        note = f"{label} {reopened}" + (f" by {who}" if who else "")
    else:
        note = f"GitHub opened a {severity} security alert: {title}"
    return Trigger(
        change=Change.OPEN,
        key=key,
        actor=github_actor(payload),
        title=title,
        severity=severity,
        summary=summary,
        links=(Link("Alert on GitHub", url),) if url else (),
        note=note,
        version=alerts.alert_version(payload, OPENING),
    )


def _alert_closed(payload: Mapping[str, object], key: str, note: str) -> Trigger:
    return Trigger(
        change=Change.RESOLVE,
        key=key,
        actor=github_actor(payload),
        note=note,
        version=alerts.alert_version(payload, CLOSING),
    )


def _issue_version(payload: Mapping[str, object], phase: int) -> Version | None:
    updated = opt_epoch(payload, "issue.updated_at")
    if updated is None and phase == CLOSING:
        updated = opt_epoch(payload, "issue.closed_at")
    return (updated, phase) if updated is not None else None


def _is_hub_issue(payload: Mapping[str, object]) -> bool:
    """The hub's own tracking issues must never be mirrored back as incidents."""
    if HUB_LABEL in names(payload, "issue.labels"):
        return True
    body = opt_str(payload, "issue.body") or ""
    return HUB_MARKER in body


def _open_from_issue(payload: Mapping[str, object], labels: frozenset[str]) -> Trigger:
    repo = req_str(payload, "repository.full_name")
    number = req_int(payload, "issue.number")
    title = opt_str(payload, "issue.title") or f"Issue #{number}"
    author = opt_str(payload, "issue.user.login") or "unknown"
    body = first_line(opt_str(payload, "issue.body"), 300)
    summary = f"Mirrored from {repo}#{number}, opened by {author}."
    url = opt_str(payload, "issue.html_url")
    return Trigger(
        change=Change.OPEN,
        key=issue_key(repo, number),
        actor=github_actor(payload),
        title=title,
        severity=_issue_severity(labels),
        summary=f"{summary} {body}" if body else summary,
        links=(Link("Issue on GitHub", url),) if url else (),
        note=f"Issue {repo}#{number} labelled incident",
        # The issue's own updated_at (the labelling touches it); phase 0 below a close.
        version=_issue_version(payload, OPENING),
    )


def _issue_severity(labels: frozenset[str]) -> Severity:
    """The most severe `sevN` label on the issue; sev3 without one."""
    levels = sorted(
        int(match.group(1)) for label in labels if (match := SEVERITY_LABEL.match(label))
    )
    return Severity(f"sev{levels[0]}") if levels else Severity.SEV3
