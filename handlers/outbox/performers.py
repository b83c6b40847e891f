"""One function per kind of side effect: what to call, under which limits, and how to tell
whether a call that may have happened already did (`crashed`). The GitHub ones are in
github_effects.py."""

from __future__ import annotations

import logging
from typing import Any

from handlers.context import WorkflowContext
from handlers.outbox.calls import Done, Perform, Wait, called, held_back
from handlers.outbox.github_effects import (
    comment_on_issue,
    open_issue,
    set_issue_state,
    tracker_for,
)
from hub.events.models import as_utc
from integrations.outbound import Permanent
from integrations.slack_messages import IncidentView, incident_message, thread_note

log = logging.getLogger(__name__)

__all__ = ["Done", "Perform", "Wait", "performer_for", "view_of"]


def channels_of(ctx: WorkflowContext, incident: Any) -> list[str]:
    """The incident's Slack channels by configured name; the first holds its message. An
    incident opened before routing rules has none stored: the configured channel."""
    return list(incident.channels or ()) or [ctx.settings.slack_incident_channel]


def view_of(ctx: WorkflowContext, incident: Any) -> IncidentView:
    issue_url = None
    tracker = tracker_for(ctx, incident)
    if tracker is not None and incident.github_issue:
        issue_url = tracker.issue_url(incident.github_issue)
    return IncidentView(
        id=incident.id,
        title=incident.title,
        severity=incident.severity,
        status=incident.status,
        summary=incident.summary,
        links=tuple((link["label"], link["url"]) for link in incident.links or ()),
        occurrences=incident.occurrences,
        first_seen=as_utc(incident.first_seen),
        last_seen=as_utc(incident.last_seen),
        acknowledged_by=incident.acknowledged_by,
        resolved_by=incident.resolved_by,
        github_issue_url=issue_url,
    )


def _slot(ctx: WorkflowContext, *keys: tuple[str, float]) -> Wait | None:
    """Take a slot under every key, narrowest first (so a busy channel does not spend the
    workspace's budget), or say how long to wait."""
    for key, spacing in keys:
        wait = ctx.limits.reserve(key, spacing)
        if wait > 0:
            return Wait(wait)
    return None


def _post_slot(ctx: WorkflowContext, channel: str) -> Wait | None:
    # chat.postMessage: about one a second per channel, and a workspace-wide allowance.
    s = ctx.settings
    return _slot(
        ctx,
        (f"slack:channel:{channel}", s.slack_channel_interval_s),
        ("slack:posts", 60.0 / s.slack_workspace_per_minute),
    )


def _posted(ctx: WorkflowContext, channel: str) -> None:
    """The spacing counts again from when the post went out, not only from its reservation:
    a post that left late (a busy core, a slow connection) and the next one on time would
    reach Slack less than a second apart."""
    ctx.limits.block(f"slack:channel:{channel}", ctx.settings.slack_channel_interval_s)


def _update_slots(ctx: WorkflowContext, timestamps: list[str]) -> Wait | None:
    # chat.update is Slack's tier 3 (about 50 a minute for the app): its own budget, so that
    # count updates never delay the post announcing a new incident. An incident in several
    # channels takes that many slots at once: one at a time, a wait after the first message
    # would spend its slot again on every try and never reach the second.
    s = ctx.settings
    keys = [(f"slack:message:{ts}", s.slack_channel_interval_s) for ts in timestamps]
    keys.append(("slack:updates", 60.0 / s.slack_updates_per_minute * len(timestamps)))
    return _slot(ctx, *keys)


def post_message(ctx: WorkflowContext, effect: Any, incident: Any, crashed: bool) -> Done | Wait:
    """The incident's message in one of its channels (payload `channel`; none: the first)."""
    extra = (effect.payload or {}).get("channel")
    if extra is not None:
        return _post_mirror(ctx, incident, extra, crashed)
    if incident.slack_ts or (held_back(incident) and incident.status == "resolved"):
        return Done()
    text, blocks = incident_message(view_of(ctx, incident))
    channel = channels_of(ctx, incident)[0]
    slack = ctx.slack
    if slack is None:
        log.info("[slack %s] %s", channel, text)
        return Done()
    marker = f"post:{incident.id}"
    if crashed:
        # Reading history needs the channel's id, where posting takes its name as well.
        channel_id = slack.channel_id(channel)
        found = called(ctx, "slack", "conversations.history", slack.find_posted, channel_id, marker)
        if found is not None:
            return Done({"slack_channel": found.channel_id, "slack_ts": found.ts})
    if wait := _post_slot(ctx, channel):
        return wait
    posted = called(
        ctx, "slack", "chat.postMessage", slack.post, channel, text, blocks, marker=marker
    )
    _posted(ctx, channel)
    return Done({"slack_channel": posted.channel_id, "slack_ts": posted.ts})


def _post_mirror(ctx: WorkflowContext, incident: Any, channel: str, crashed: bool) -> Done | Wait:
    """The same message in a further channel a rule routed it to (`continue: true`)."""
    mirrors = list(incident.mirrors or ())
    if any(m["channel"] == channel for m in mirrors) or held_back(incident):
        return Done()
    text, blocks = incident_message(view_of(ctx, incident))
    slack = ctx.slack
    if slack is None:
        log.info("[slack %s] %s", channel, text)
        return Done()
    marker = f"post:{incident.id}:{channel}"
    found = None
    if crashed:
        channel_id = slack.channel_id(channel)
        found = called(ctx, "slack", "conversations.history", slack.find_posted, channel_id,
                        marker)  # fmt: skip
    if found is None:
        if wait := _post_slot(ctx, channel):
            return wait
        found = called(ctx, "slack", "chat.postMessage", slack.post, channel, text, blocks,
                        marker=marker)  # fmt: skip
        _posted(ctx, channel)
    mirror = {"channel": channel, "channel_id": found.channel_id, "ts": found.ts}
    return Done({"mirrors": [*mirrors, mirror]})


def update_message(ctx: WorkflowContext, effect: Any, incident: Any, crashed: bool) -> Done | Wait:
    """Every message of the incident shows its state now (chat.update is idempotent: an
    error after some of them only means those are updated again on the retry)."""
    text, blocks = incident_message(view_of(ctx, incident))
    slack = ctx.slack
    if slack is None:
        log.info("[slack update %s] %s", incident.id, text)
        return Done()
    if not incident.slack_ts:
        if held_back(incident):
            return Done()
        raise Permanent("the incident has no Slack message to update (its post failed)")
    messages = [(incident.slack_channel, incident.slack_ts)]
    messages += [(m["channel_id"], m["ts"]) for m in incident.mirrors or ()]
    if wait := _update_slots(ctx, [ts for _, ts in messages]):
        return wait
    for channel, ts in messages:
        called(ctx, "slack", "chat.update", slack.update, channel, ts, text, blocks)
    return Done()


def reply_in_thread(ctx: WorkflowContext, effect: Any, incident: Any, crashed: bool) -> Done | Wait:
    """A line in the thread of the message in the first channel, or (payload `channel`) of
    the one in a further channel."""
    text, blocks = thread_note(effect.payload["text"])
    slack = ctx.slack
    if slack is None:
        log.info("[slack thread %s] %s", incident.id, text)
        return Done()
    if not incident.slack_ts:
        if held_back(incident):
            return Done()
        raise Permanent("the incident has no Slack message to reply to (its post failed)")
    name = effect.payload.get("channel") or channels_of(ctx, incident)[0]
    channel, ts = incident.slack_channel, incident.slack_ts
    if "channel" in effect.payload:
        mirror = next((m for m in incident.mirrors or () if m["channel"] == name), None)
        if mirror is None:
            return Done()  # that channel's post failed (it is dead, and says so)
        channel, ts = mirror["channel_id"], mirror["ts"]
    marker = f"reply:{effect.dedupe}"
    if crashed:
        find = slack.find_posted
        found = called(ctx, "slack", "conversations.replies", find, channel, marker, thread_ts=ts)
        if found is not None:
            return Done()
    # Paced under the channel's configured name, as the post was: the stored id would be a
    # second key for the same channel, and a reply a moment after the post a 429.
    if wait := _post_slot(ctx, name):
        return wait
    post = slack.post
    called(
        ctx, "slack", "chat.postMessage", post, channel, text, blocks, marker=marker, thread_ts=ts
    )
    _posted(ctx, name)
    return Done()


def respond(ctx: WorkflowContext, effect: Any, incident: Any, crashed: bool) -> Done | Wait:
    """A slash command's answer, through its response_url (ephemeral, not rate limited by
    channel: Slack allows five responses per command within 30 minutes)."""
    payload, slack = effect.payload, ctx.slack
    if slack is None:
        log.info("[slack response] %s", payload["message"].get("text", ""))
        return Done()
    called(ctx, "slack", "response_url", slack.respond, payload["response_url"], payload["message"])
    return Done()


PERFORMERS: dict[str, Perform] = {
    "slack.post": post_message,
    "slack.update": update_message,
    "slack.reply": reply_in_thread,
    "slack.respond": respond,
    "github.issue": open_issue,
    "github.comment": comment_on_issue,
    "github.state": set_issue_state,
}


def performer_for(kind: str) -> Perform:
    return PERFORMERS[kind]
