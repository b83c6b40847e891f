"""Block Kit rendering: buttons by status, escaping, Slack's limits, and list truncation."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from integrations.slack_messages import (
    BUTTON_ACTIONS,
    IncidentView,
    clip_mrkdwn,
    incident_list,
    incident_message,
    thread_note,
)

FIRST = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

VIEW = IncidentView(
    id="inc_01",
    title="CI broken on main",
    severity="sev2",
    status="open",
    summary="Workflow *build* failed on `main`.",
    links=(("Run", "https://github.com/acme/api/actions/runs/1"),),
    occurrences=3,
    first_seen=FIRST,
    last_seen=FIRST + timedelta(minutes=5),
    acknowledged_by=None,
    resolved_by=None,
    github_issue_url=None,
)


def blocks_of(view: IncidentView) -> list[dict[str, Any]]:
    return incident_message(view)[1]


def of_type(blocks: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [b for b in blocks if b["type"] == kind]


def buttons(view: IncidentView) -> dict[str, dict[str, Any]]:
    actions = of_type(blocks_of(view), "actions")
    return {e["action_id"]: e for a in actions for e in a["elements"]}


def all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def mrkdwn(node: Any) -> str:
    """Every mrkdwn text in a structure: what Slack parses for links and mentions
    (plain_text, as in the header and the confirm dialog, is shown as is)."""
    if isinstance(node, list):
        return "\n".join(mrkdwn(item) for item in node)
    if not isinstance(node, dict):
        return ""
    own = node["text"] if node.get("type") == "mrkdwn" else ""
    return "\n".join([own, *(mrkdwn(v) for v in node.values() if isinstance(v, dict | list))])


def test_open_incident_has_both_buttons_with_the_incident_id() -> None:
    found = buttons(VIEW)
    assert set(found) == {"incident.ack", "incident.resolve"} == set(BUTTON_ACTIONS)
    assert found["incident.ack"]["value"] == found["incident.resolve"]["value"] == "inc_01"
    resolve = found["incident.resolve"]
    assert resolve["style"] == "danger"
    assert {"title", "text", "confirm", "deny"} <= set(resolve["confirm"])
    assert BUTTON_ACTIONS == {"incident.ack": "acknowledge", "incident.resolve": "resolve"}


def test_acknowledged_incident_only_offers_resolve_and_names_who() -> None:
    view = replace(VIEW, status="acknowledged", acknowledged_by="<@U123ABC>")
    assert set(buttons(view)) == {"incident.resolve"}
    contexts = all_text(of_type(blocks_of(view), "context"))
    assert "Acknowledged by <@U123ABC>" in contexts  # the mention stays a mention


def test_resolved_incident_has_no_buttons_and_says_who_resolved_it() -> None:
    view = replace(VIEW, status="resolved", resolved_by="octocat")
    blocks = blocks_of(view)
    assert of_type(blocks, "actions") == []
    assert "Resolved by octocat" in all_text(of_type(blocks, "context"))


def test_header_has_severity_emoji_and_title_and_fields_use_slack_dates() -> None:
    text, blocks = incident_message(VIEW)
    header = blocks[0]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert header["text"]["text"].startswith(":large_orange_circle:")
    assert "CI broken on main" in header["text"]["text"]
    fields = " ".join(f["text"] for f in blocks[1]["fields"])
    epoch = int(FIRST.timestamp())
    assert f"<!date^{epoch}^{{date_short_pretty}} {{time}}|2026-03-01 12:00 UTC>" in fields
    assert "*Occurrences*\n3" in fields and "Open" in fields
    assert "CI broken on main" in text and "SEV2" in text


def test_user_text_is_escaped_but_links_stay_links() -> None:
    view = replace(
        VIEW,
        title="<!channel> & <@U999>",
        summary="a <b> & <!here>",
        links=(("<docs> & more", "https://example.com/?a=1&b=2"), ("bad", "javascript:x")),
        github_issue_url="https://github.com/acme/api/issues/7",
    )
    text, blocks = incident_message(view)
    body = mrkdwn(blocks)
    assert "<!channel>" not in body and "<!here>" not in body and "<@U999>" not in body
    assert "a &lt;b&gt; &amp; &lt;!here&gt;" in body
    assert "<https://example.com/?a=1&amp;b=2|&lt;docs&gt; &amp; more>" in body
    assert "javascript:" not in body
    assert "<https://github.com/acme/api/issues/7|GitHub issue>" in body
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp;" in text


def test_an_actor_that_is_not_a_mention_is_escaped() -> None:
    view = replace(VIEW, status="resolved", resolved_by="<!everyone>")
    assert "<!everyone>" not in mrkdwn(blocks_of(view))


def test_long_text_is_clipped_to_block_kit_limits() -> None:
    view = replace(
        VIEW, title="T" * 500, summary="&" * 5000, links=(("x" * 90, "https://e.x/"),) * 100
    )
    text, blocks = incident_message(view)
    assert len(blocks[0]["text"]["text"]) <= 150
    sections = [b["text"]["text"] for b in of_type(blocks, "section") if "text" in b]
    assert sections and all(len(s) <= 3000 for s in sections)
    summary = sections[0]
    assert summary.endswith("&amp;…")  # cut between entities, never inside one
    links = sections[1]
    assert links.count("<https://e.x/|") == links.count(">")  # whole links only
    resolve = buttons(view)["incident.resolve"]
    assert len(resolve["confirm"]["text"]["text"]) <= 300
    assert len(text) <= 4000


def test_clip_mrkdwn_never_leaves_half_a_link() -> None:
    assert clip_mrkdwn("short", 10) == "short"
    assert clip_mrkdwn("ab <https://x.y/z|label>", 10) == "ab …"
    assert clip_mrkdwn("abcd &amp;", 8) == "abcd …"


def test_messages_are_json_and_only_use_known_block_types() -> None:
    for status in ("open", "acknowledged", "resolved"):
        text, blocks = incident_message(replace(VIEW, status=status))
        assert json.loads(json.dumps(blocks)) == blocks and isinstance(text, str)
        assert {b["type"] for b in blocks} <= {"header", "section", "context", "actions"}
        assert len(blocks) <= 50
        for block in of_type(blocks, "section"):
            assert "text" in block or 0 < len(block["fields"]) <= 10


def test_naive_datetimes_are_taken_as_utc() -> None:
    naive = replace(VIEW, first_seen=FIRST.replace(tzinfo=None))
    fields = blocks_of(naive)[1]["fields"]
    assert f"<!date^{int(FIRST.timestamp())}^" in fields[3]["text"]


def test_thread_note_keeps_mentions_and_fits_a_section() -> None:
    text, blocks = thread_note("Acknowledged by <@U123>")
    assert text == "Acknowledged by <@U123>"
    assert blocks == [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    long_text, long_blocks = thread_note("x" * 4000)
    assert len(long_blocks[0]["text"]["text"]) <= 3000 and long_text.endswith("…")


@pytest.mark.parametrize("count", [1, 20, 21, 45])
def test_incident_list_is_ephemeral_and_truncated(count: int) -> None:
    views = [replace(VIEW, id=f"inc_{n:02d}", title=f"<b>{n}") for n in range(count)]
    answer = incident_list(views)
    assert answer["response_type"] == "ephemeral"
    assert str(count) in answer["text"]
    rendered = json.dumps(answer["blocks"])
    assert sum(f"inc_{n:02d}" in rendered for n in range(count)) == min(count, 20)
    assert "<b>" not in rendered
    assert len(answer["blocks"]) <= 50
    if count > 20:
        assert f"and {count - 20} more" in rendered
    else:
        assert "more" not in rendered


def test_empty_incident_list_still_answers() -> None:
    answer = incident_list([])
    assert answer["response_type"] == "ephemeral" and answer["blocks"]
    assert "No live incidents" in answer["text"]
