"""Block Kit for incidents: the one message per incident, its thread notes, and the list a
slash command answers with. Pure functions of plain data.

Slack rejects a whole message (`invalid_blocks`, `msg_too_long`) when one element is over its
limit, so every piece of outside text is clipped to the limit of the element it lands in, and
escaped where Slack would otherwise read it as a link or a mention (`<!channel>`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# action_id of each button -> the verb the workflows apply.
BUTTON_ACTIONS = {"incident.ack": "acknowledge", "incident.resolve": "resolve"}

EMOJI = {
    "sev1": ":red_circle:",
    "sev2": ":large_orange_circle:",
    "sev3": ":large_yellow_circle:",
    "sev4": ":white_circle:",
}
_STATUS = {"open": "Open", "acknowledged": "Acknowledged", "resolved": "Resolved"}

# Block Kit limits (characters): header text, section text, section field, context element,
# confirm dialog text, top-level fallback text (Slack truncates past 4000), blocks per message.
HEADER_MAX, SECTION_MAX, FIELD_MAX, CONTEXT_MAX = 150, 3000, 2000, 2000
CONFIRM_MAX, TEXT_MAX = 300, 4000
LIST_MAX = 20  # incidents in a list answer: 20 lines + a heading + "more" stay far under 50

# A Slack user mention the hub wrote itself (`<@U123>`): the one markup an actor may carry.
_MENTION = re.compile(r"<@[UW][A-Z0-9]+>")
# What a cut can leave dangling at the end: half an entity or half a `<...>` link.
_DANGLING = re.compile(r"(&[a-z]{0,4}|<[^>]*)$")

Block = dict[str, Any]


@dataclass(frozen=True)
class IncidentView:
    id: str
    title: str
    severity: str  # "sev1".."sev4"
    status: str  # "open" | "acknowledged" | "resolved"
    summary: str
    links: tuple[tuple[str, str], ...]  # (label, url)
    occurrences: int
    first_seen: datetime
    last_seen: datetime
    acknowledged_by: str | None
    resolved_by: str | None
    github_issue_url: str | None


def escape(text: str) -> str:
    """Slack's three control characters, so outside text cannot become links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """Plain text cut to `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip_mrkdwn(text: str, limit: int) -> str:
    """Like `clip`, without leaving half an `&amp;` or half a `<link|label>` behind."""
    if len(text) <= limit:
        return text
    return _DANGLING.sub("", text[: limit - 1]) + "…"


def actor(who: str) -> str:
    """An actor as the hub recorded it: a Slack mention stays a mention, anything else
    (a GitHub login, "hub") is shown as text."""
    return who if _MENTION.fullmatch(who) else escape(who)


def slack_date(when: datetime) -> str:
    """Shown in each reader's own time zone; the fallback (UTC) is for old clients."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # the hub stores UTC; naive means UTC
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def incident_message(view: IncidentView) -> tuple[str, list[Block]]:
    """The incident's one message: fallback text (notifications, old clients) and blocks."""
    blocks: list[Block] = [_header(view), {"type": "section", "fields": _fields(view)}]
    if view.summary.strip():
        blocks.append(_section(clip_mrkdwn(escape(view.summary), SECTION_MAX)))
    if links := _links(view):
        blocks.append(_section(links))
    if note := _who_changed_it(view):
        blocks.append(_context(note))
    if buttons := _buttons(view):
        blocks.append(
            {"type": "actions", "block_id": f"incident:{view.id}"[:255], "elements": buttons}
        )
    blocks.append(_context(_footer(view)))
    return _fallback(view), blocks


def _fallback(view: IncidentView) -> str:
    status = _STATUS.get(view.status, view.status).lower()
    text = f"[{view.severity.upper()}] {view.title} ({status}, {_times(view.occurrences)})"
    return clip_mrkdwn(escape(text), TEXT_MAX)


def _header(view: IncidentView) -> Block:
    # plain_text is never parsed for links or mentions, so the title is not escaped here.
    emoji = EMOJI.get(view.severity, ":grey_question:")
    text = clip(f"{emoji} {view.severity.upper()} · {view.title}", HEADER_MAX)
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _fields(view: IncidentView) -> list[Block]:
    status = _STATUS.get(view.status, escape(view.status))
    if view.status == "resolved":
        status = f":white_check_mark: {status}"
    emoji = EMOJI.get(view.severity, "")
    values = [
        f"*Status*\n{status}",
        f"*Severity*\n{emoji} {escape(view.severity.upper())}".strip(),
        f"*Occurrences*\n{view.occurrences}",
        f"*First / last seen*\n{slack_date(view.first_seen)} / {slack_date(view.last_seen)}",
    ]
    return [{"type": "mrkdwn", "text": clip_mrkdwn(value, FIELD_MAX)} for value in values]


def _links(view: IncidentView) -> str:
    pairs = [*view.links]
    if view.github_issue_url:
        pairs.append(("GitHub issue", view.github_issue_url))
    text = "*Links*"
    for label, url in pairs:
        # Only web links: a `url` such as `!channel` would otherwise ping the whole channel.
        if not url.startswith(("https://", "http://")):
            continue
        item = f"\n• <{escape(url).replace('|', '%7C')}|{escape(label) or 'link'}>"
        if len(text) + len(item) > SECTION_MAX:
            break  # a whole link or none: a cut one is broken markup
        text += item
    return text if "\n" in text else ""


def _who_changed_it(view: IncidentView) -> str:
    if view.status == "resolved":
        return f":white_check_mark: Resolved by {actor(view.resolved_by or 'someone')}"
    if view.status == "acknowledged":
        return f":eyes: Acknowledged by {actor(view.acknowledged_by or 'someone')}"
    return ""


def _buttons(view: IncidentView) -> list[Block]:
    buttons: list[Block] = []
    if view.status == "open":
        buttons.append(_button("Acknowledge", "incident.ack", view.id))
    if view.status != "resolved":
        resolve = _button("Resolve", "incident.resolve", view.id)
        resolve["style"] = "danger"
        resolve["confirm"] = {
            "title": {"type": "plain_text", "text": "Resolve this incident?"},
            "text": {
                "type": "plain_text",
                "text": clip(f"{view.title} will be marked resolved for everyone.", CONFIRM_MAX),
            },
            "confirm": {"type": "plain_text", "text": "Resolve"},
            "deny": {"type": "plain_text", "text": "Cancel"},
            "style": "danger",
        }
        buttons.append(resolve)
    return buttons


def _button(label: str, action_id: str, incident_id: str) -> Block:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": incident_id,
    }


def _footer(view: IncidentView) -> str:
    ident = escape(view.id)
    if view.status == "resolved":
        return f"Incident `{ident}`"
    return f"Incident `{ident}` · `/incident ack {ident}` · `/incident resolve {ident}`"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> Block:
    text = clip_mrkdwn(text, CONTEXT_MAX)
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _times(n: int) -> str:
    return "1 occurrence" if n == 1 else f"{n} occurrences"


def thread_note(text: str) -> tuple[str, list[Block]]:
    """A line in the incident's thread: who changed what. `text` is the hub's own mrkdwn
    (it may mention users), so it is not escaped: escape outside values before building it."""
    body = clip_mrkdwn(text, SECTION_MAX)
    return body, [_section(body)]


def incident_list(views: Sequence[IncidentView]) -> dict[str, Any]:
    """A slash command's answer (seen only by who asked): the live incidents, in the order
    given, at most LIST_MAX of them."""
    if not views:
        text = "No live incidents. :tada:"
        return {"response_type": "ephemeral", "text": text, "blocks": [_section(text)]}
    text = f"{len(views)} live incident" + ("" if len(views) == 1 else "s")
    blocks = [_section(f"*{text}*")]
    blocks += [_section(_list_line(view)) for view in views[:LIST_MAX]]
    if len(views) > LIST_MAX:
        blocks.append(_context(f"…and {len(views) - LIST_MAX} more"))
    return {"response_type": "ephemeral", "text": text, "blocks": blocks}


def _list_line(view: IncidentView) -> str:
    emoji = EMOJI.get(view.severity, "")
    title = clip_mrkdwn(escape(view.title), 200)
    status = _STATUS.get(view.status, escape(view.status))
    return (
        f"{emoji} *{title}*\n{escape(view.severity.upper())} · {status} · "
        f"{_times(view.occurrences)} · last {slack_date(view.last_seen)} · `{escape(view.id)}`"
    )
