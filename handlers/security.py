"""GitHub security alerts, and issues people label `incident`.

Security alerts open one incident per alert, with a severity taken from the alert. Issues
labelled `incident` are mirrored as incidents and resolved when closed, except the hub's own
tracking issues (label `hub-incident`, or a `<!-- hub:` marker in the body), which would
otherwise be mirrored back in a loop."""

from __future__ import annotations

import re
from collections.abc import Mapping

from handlers.triggers.model import Change, Link, Severity, Trigger
from handlers.triggers.payload import (
    first_line,
    github_actor,
    names,
    opt_bool,
    opt_int,
    opt_str,
    req_int,
    req_str,
    shorten,
)

# Code scanning security_severity_level, and Dependabot / advisory severity ("moderate" is
# the advisory database's word for "medium").
LEVELS = {
    "critical": Severity.SEV1,
    "high": Severity.SEV2,
    "medium": Severity.SEV3,
    "moderate": Severity.SEV3,
    "low": Severity.SEV4,
}
# Code scanning rule.severity, for rules without a security severity (non-security queries).
RULE_LEVELS = {
    "error": Severity.SEV2,
    "warning": Severity.SEV3,
    "note": Severity.SEV4,
    "none": Severity.SEV4,
}
INCIDENT_LABEL = "incident"
HUB_LABEL = "hub-incident"
HUB_MARKER = "<!-- hub:"
SEVERITY_LABEL = re.compile(r"^sev[-_ ]?([1-4])$")


def open_code_scanning_incident(payload: Mapping[str, object]) -> Trigger:
    """`code_scanning_alert.created`: severity from the rule's security severity level."""
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
    severity = _level(level, LEVELS) or _level(rule_severity, RULE_LEVELS) or Severity.SEV3
    details = [f"{opt_str(payload, 'alert.tool.name') or 'Code scanning'} alert #{number}"]
    details.append(f"severity {level or rule_severity or 'unknown'}")
    location = _location(payload)
    if location:
        details.append(f"at {location}")
    return _alert(
        payload,
        key=alert_key("code-scanning", repo, number),
        title=f"Code scanning: {shorten(rule, 120)} in {repo}",
        severity=severity,
        summary=" ".join(details) + ".",
    )


def open_secret_leak_incident(payload: Mapping[str, object]) -> Trigger:
    """`secret_scanning_alert.created`: a secret was committed; always sev1 (rotate it)."""
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
    )


def open_vulnerable_dependency_incident(payload: Mapping[str, object]) -> Trigger:
    """`dependabot_alert.created`: severity from the advisory (or the vulnerability)."""
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
        severity=_level(level, LEVELS) or Severity.SEV3,
        summary=_dependency_summary(payload, number, level),
    )


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
    )


def alert_key(kind: str, repo: str, number: int) -> str:
    return f"github:{kind}:{repo}:{number}"


def issue_key(repo: str, number: int) -> str:
    return f"github:issue:{repo}:{number}"


def _level(value: str | None, levels: Mapping[str, Severity]) -> Severity | None:
    return levels.get(value.strip().lower()) if value else None


def _alert(
    payload: Mapping[str, object], *, key: str, title: str, severity: Severity, summary: str
) -> Trigger:
    url = opt_str(payload, "alert.html_url")
    return Trigger(
        change=Change.OPEN,
        key=key,
        actor=github_actor(payload),
        title=title,
        severity=severity,
        summary=summary,
        links=(Link("Alert on GitHub", url),) if url else (),
        note=f"GitHub opened a {severity} security alert: {title}",
    )


def _location(payload: Mapping[str, object]) -> str:
    path = opt_str(payload, "alert.most_recent_instance.location.path")
    line = opt_int(payload, "alert.most_recent_instance.location.start_line")
    ref = opt_str(payload, "alert.most_recent_instance.ref") or opt_str(payload, "ref")
    where = f"{path}:{line}" if path and line is not None else path or ""
    return f"{where} on {ref}" if where and ref else where


def _dependency_summary(payload: Mapping[str, object], number: int, level: str | None) -> str:
    parts = [f"Dependabot alert #{number}, severity {level or 'unknown'}."]
    summary = opt_str(payload, "alert.security_advisory.summary")
    if summary is not None:
        parts.append(first_line(summary, 200) + ".")
    vulnerable = opt_str(payload, "alert.security_vulnerability.vulnerable_version_range")
    if vulnerable is not None:
        parts.append(f"Vulnerable: {vulnerable}.")
    patched = opt_str(payload, "alert.security_vulnerability.first_patched_version.identifier")
    parts.append(f"Fixed in {patched}." if patched else "No patched version yet.")
    manifest = opt_str(payload, "alert.dependency.manifest_path")
    if manifest is not None:
        parts.append(f"Manifest: {manifest}.")
    return " ".join(parts)


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
    )


def _issue_severity(labels: frozenset[str]) -> Severity:
    """The most severe `sevN` label on the issue; sev3 without one."""
    levels = sorted(
        int(match.group(1)) for label in labels if (match := SEVERITY_LABEL.match(label))
    )
    return Severity(f"sev{levels[0]}") if levels else Severity.SEV3
