"""The GitHub side of the outbox: one tracking issue per incident, in the repository it was
routed to, with a comment per status change and its state kept in step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handlers.context import WorkflowContext
from handlers.outbox.calls import Done, Wait, called, held_back
from integrations.outbound import Permanent

if TYPE_CHECKING:
    from integrations.github_api import IssueTracker


def tracker_for(ctx: WorkflowContext, incident: Any) -> IssueTracker | None:
    """The incident's repository (fixed when it opened), else the configured default: None
    when there is no token or no repository (then it has no tracking issue)."""
    repo = incident.github_repo or ctx.settings.github_incident_repo
    if ctx.github is None or not repo:
        return None
    return ctx.github.for_repo(repo)


def _github_slot(ctx: WorkflowContext) -> Wait | None:
    wait = ctx.limits.reserve("github", 60.0 / ctx.settings.github_per_minute)
    return Wait(wait) if wait > 0 else None


def open_issue(ctx: WorkflowContext, effect: Any, incident: Any, crashed: bool) -> Done | Wait:
    tracker = tracker_for(ctx, incident)
    if tracker is None or incident.github_issue:
        return Done()
    if held_back(incident) and incident.status == "resolved":
        return Done()
    marker = f"incident:{incident.id}"
    found = called(ctx, "github", "issues.list", tracker.find, marker) if crashed else None
    if found is not None:
        return Done({"github_issue": found})
    if wait := _github_slot(ctx):
        return wait
    title = f"[{incident.severity.upper()}] {incident.title}"
    links = "\n".join(f"- [{link['label']}]({link['url']})" for link in incident.links or ())
    body = (
        f"{incident.summary}\n\n{links}\n\nOpened by the webhook hub as incident `{incident.id}`."
    )
    number = called(
        ctx, "github", "issues.create", tracker.create, title, body, ["incident"], marker=marker
    )
    return Done({"github_issue": number})


def comment_on_issue(
    ctx: WorkflowContext, effect: Any, incident: Any, crashed: bool
) -> Done | Wait:
    tracker = tracker_for(ctx, incident)
    if tracker is None or (held_back(incident) and not incident.github_issue):
        return Done()
    if not incident.github_issue:
        raise Permanent("the incident has no GitHub issue to comment on (its creation failed)")
    number, marker = incident.github_issue, f"comment:{effect.dedupe}"
    if crashed and called(
        ctx, "github", "issues.comments.list", tracker.has_comment, number, marker
    ):
        return Done()
    if wait := _github_slot(ctx):
        return wait
    body = effect.payload["body"]
    called(ctx, "github", "issues.comments.create", tracker.comment, number, body, marker=marker)
    return Done()


def set_issue_state(ctx: WorkflowContext, effect: Any, incident: Any, crashed: bool) -> Done | Wait:
    tracker = tracker_for(ctx, incident)
    if tracker is None or not incident.github_issue:
        return Done()
    if wait := _github_slot(ctx):
        return wait
    change = tracker.close if effect.payload["state"] == "closed" else tracker.reopen
    called(ctx, "github", "issues.update", change, incident.github_issue)
    return Done()
