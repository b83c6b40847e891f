"""Reading GitHub's security alert payloads (code scanning, secret scanning, Dependabot):
severity, the alert's own version, how it was dismissed, where it was found. The triggers that
use them are in handlers/security.py."""

from __future__ import annotations

from collections.abc import Mapping

from handlers.triggers.model import Severity, Version
from handlers.triggers.payload import first_line, opt_epoch, opt_int, opt_str

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
OPENING, CLOSING = 0, 1  # the phase, second in a version
# Actions that open an alert's incident again after a close, as the timeline words them.
REOPEN_ACTIONS = {
    "reopened": "reopened",
    "reopened_by_user": "reopened",
    "auto_reopened": "auto-reopened",
    "reintroduced": "reintroduced",  # Dependabot: a fixed alert's dependency is back
}
# An alert's own timestamps of closing, in no particular order (the latest present counts).
CLOSED_AT = ("fixed_at", "dismissed_at", "resolved_at", "auto_dismissed_at")


def level(value: str | None, levels: Mapping[str, Severity]) -> Severity | None:
    return levels.get(value.strip().lower()) if value else None


def alert_version(payload: Mapping[str, object], phase: int) -> Version | None:
    """(epoch seconds, phase) from the alert's own timestamps, never from arrival.

    `updated_at` when the alert carries it (Dependabot always, secret scanning and newer code
    scanning payloads mostly). Otherwise: `created_at` for a creation, the latest closing
    timestamp present for a close. A reopen without `updated_at` is None (applies as it
    arrives): code scanning reopens null `fixed_at`/`dismissed_at` and stamp nothing, and
    `created_at` would rank the reopen below the close it undoes. Likewise a close with no
    closing time of its own (code scanning `fixed` carries none): `created_at` would tie
    every later fix of the alert with the first one, so a fix after a reopen would be stale."""
    updated = opt_epoch(payload, "alert.updated_at")
    if updated is not None:
        return (updated, phase)
    if phase == OPENING:
        if opt_str(payload, "action") in REOPEN_ACTIONS:
            return None
        created = opt_epoch(payload, "alert.created_at")
        return (created, phase) if created is not None else None
    closed = [t for name in CLOSED_AT if (t := opt_epoch(payload, f"alert.{name}")) is not None]
    return (max(closed), phase) if closed else None


def dismissal(payload: Mapping[str, object]) -> str:
    """`dismissed by octocat: false positive (the comment)`. Code scanning sends reasons with
    spaces (`false positive`), Dependabot with underscores (`tolerable_risk`): both as words."""
    who = opt_str(payload, "alert.dismissed_by.login") or opt_str(payload, "sender.login")
    text = "dismissed" + (f" by {who}" if who else "")
    reason = opt_str(payload, "alert.dismissed_reason")
    if reason is not None:
        text += f": {words(reason)}"
    comment = opt_str(payload, "alert.dismissed_comment")
    if comment is not None:
        text += f" ({first_line(comment, 120)})"
    return text


def words(value: str) -> str:
    return value.replace("_", " ")


def location(payload: Mapping[str, object]) -> str:
    path = opt_str(payload, "alert.most_recent_instance.location.path")
    line = opt_int(payload, "alert.most_recent_instance.location.start_line")
    ref = opt_str(payload, "alert.most_recent_instance.ref") or opt_str(payload, "ref")
    where = f"{path}:{line}" if path and line is not None else path or ""
    return f"{where} on {ref}" if where and ref else where


def dependency_summary(payload: Mapping[str, object], number: int, level: str | None) -> str:
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
