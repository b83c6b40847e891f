"""SlackClient against the local Slack fake: posts, updates, finding a post again, and how
each failure reaches the caller."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from integrations import slack_api
from integrations.outbound import Permanent, RateLimited, Transient
from integrations.slack_api import Posted, SlackClient
from tests.fakes.slack import SlackServer

TOKEN = "xoxb-test-token"
BLOCKS: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    # A short per-channel window: tests post several times without waiting a second.
    with SlackServer(TOKEN, post_window_s=0.01, missing_channels=["#gone"]) as server:
        yield server
        assert server.errors == []


@pytest.fixture
def client(slack: SlackServer) -> SlackClient:
    return SlackClient(TOKEN, slack.api_url, timeout=5)


def calls_to(slack: SlackServer, method: str) -> int:
    return sum(call.path == f"/api/{method}" for call in slack.calls)


def post(client: SlackClient, marker: str, **kwargs: Any) -> Posted:
    time.sleep(0.02)  # past the fake's per-channel window
    return client.post("#incidents", "hello", BLOCKS, marker=marker, **kwargs)


def test_post_answers_the_channel_id_and_ts_and_tags_the_message(
    slack: SlackServer, client: SlackClient
) -> None:
    posted = post(client, "post:inc_1")
    assert posted.channel_id == slack.channel_id("incidents") and posted.ts
    [message] = slack.messages("incidents")
    assert message.ts == posted.ts and message.text == "hello" and message.blocks == BLOCKS
    assert message.metadata == {
        "event_type": "hub_effect",
        "event_payload": {"marker": "post:inc_1"},
    }


def test_update_changes_the_message_in_place(slack: SlackServer, client: SlackClient) -> None:
    posted = post(client, "post:inc_1")
    new_blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*acked*"}}]
    client.update(posted.channel_id, posted.ts, "acked", new_blocks)
    [message] = slack.messages("incidents")
    assert (message.text, message.blocks, message.edits) == ("acked", new_blocks, 1)


def test_find_posted_finds_a_post_by_marker_and_not_another(
    slack: SlackServer, client: SlackClient
) -> None:
    first = post(client, "post:inc_1")
    second = post(client, "post:inc_2")
    channel = first.channel_id
    assert client.find_posted(channel, "post:inc_1") == first
    assert client.find_posted(channel, "post:inc_2") == second
    assert client.find_posted(channel, "post:inc_3") is None
    assert client.find_posted("#incidents", "post:inc_2") == second  # a name works too
    assert client.find_posted(channel, "post:inc_1", oldest=float(second.ts)) is None


def test_find_posted_looks_in_a_thread(slack: SlackServer, client: SlackClient) -> None:
    parent = post(client, "post:inc_1")
    reply = post(client, "reply:1", thread_ts=parent.ts)
    channel = parent.channel_id
    assert client.find_posted(channel, "reply:1", thread_ts=parent.ts) == reply
    assert client.find_posted(channel, "reply:2", thread_ts=parent.ts) is None
    assert client.find_posted(channel, "reply:1") is None  # replies stay in their thread
    [message] = slack.messages("incidents")
    assert [r.ts for r in message.replies] == [reply.ts]


def test_find_posted_pages_through_history_a_bounded_number_of_pages(
    slack: SlackServer, client: SlackClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = post(client, "post:old")
    for n in range(3):
        post(client, f"post:new{n}")
    monkeypatch.setattr(slack_api, "PAGE_SIZE", 1)  # one message a page: four pages
    assert client.find_posted(first.channel_id, "post:old") == first
    assert calls_to(slack, "conversations.history") == 4
    monkeypatch.setattr(slack_api, "HISTORY_PAGES", 2)
    assert client.find_posted(first.channel_id, "post:old") is None
    assert calls_to(slack, "conversations.history") == 6


def test_a_429_is_rate_limited_with_its_retry_after(
    slack: SlackServer, client: SlackClient
) -> None:
    slack.force_429(retry_after_s=7, for_s=5)
    with pytest.raises(RateLimited) as info:
        client.post("#incidents", "hello", BLOCKS, marker="m")
    assert info.value.retry_after == 7
    assert calls_to(slack, "chat.postMessage") == 1  # no sleeping retry in the worker thread


def test_the_per_channel_window_is_rate_limited() -> None:
    with SlackServer(TOKEN) as slack:  # Slack's own pace: one post a second per channel
        client = SlackClient(TOKEN, slack.api_url, timeout=5)
        client.post("#incidents", "one", BLOCKS, marker="m1")
        with pytest.raises(RateLimited) as info:
            client.post("#incidents", "two", BLOCKS, marker="m2")
        assert info.value.retry_after >= 1
        assert len(slack.messages("incidents")) == 1


def test_ok_false_ratelimited_is_rate_limited(slack: SlackServer, client: SlackClient) -> None:
    slack.fail_next("chat.update", error="ratelimited")
    with pytest.raises(RateLimited) as info:
        client.update("C0000000001", "1.0", "x", BLOCKS)
    assert info.value.retry_after == 1.0  # at least a second, even without a header


def test_channel_not_found_is_permanent(client: SlackClient) -> None:
    with pytest.raises(Permanent) as info:
        client.post("#gone", "hello", BLOCKS, marker="m")
    assert "channel_not_found" in info.value.reason


@pytest.mark.parametrize(
    "error", ["message_not_found", "is_archived", "msg_too_long", "invalid_blocks"]
)
def test_request_errors_are_permanent(slack: SlackServer, client: SlackClient, error: str) -> None:
    slack.fail_next("chat.update", error=error)
    with pytest.raises(Permanent, match=error):
        client.update("C0000000001", "1.0", "x", BLOCKS)


def test_a_bad_token_is_permanent_and_never_in_the_reason(slack: SlackServer) -> None:
    wrong = "xoxb-wrong-secret-value"
    with pytest.raises(Permanent) as info:
        SlackClient(wrong, slack.api_url).post("#incidents", "hello", BLOCKS, marker="m")
    assert "invalid_auth" in info.value.reason
    assert wrong not in info.value.reason and wrong not in str(info.value)


def test_a_500_is_transient(slack: SlackServer, client: SlackClient) -> None:
    slack.fail_next("chat.postMessage", status=500)
    with pytest.raises(Transient):
        client.post("#incidents", "hello", BLOCKS, marker="m")
    assert slack.messages("incidents") == []


@pytest.mark.parametrize("error", ["internal_error", "fatal_error", "service_unavailable"])
def test_slack_side_errors_are_transient(
    slack: SlackServer, client: SlackClient, error: str
) -> None:
    slack.fail_next("chat.postMessage", error=error)
    with pytest.raises(Transient, match=error):
        client.post("#incidents", "hello", BLOCKS, marker="m")


def test_a_dropped_post_is_transient_and_not_sent_twice(
    slack: SlackServer, client: SlackClient
) -> None:
    slack.set_down("close")
    with pytest.raises(Transient):
        client.post("#incidents", "hello", BLOCKS, marker="m")
    # A retry after a lost answer could post twice: the caller checks find_posted instead.
    assert calls_to(slack, "chat.postMessage") == 1


def test_a_dropped_read_is_retried_once_then_transient(
    slack: SlackServer, client: SlackClient
) -> None:
    slack.set_down("close")
    with pytest.raises(Transient):
        client.find_posted("C0000000001", "m")
    assert calls_to(slack, "conversations.history") == 2


def test_a_post_whose_answer_is_late_times_out_as_transient(slack: SlackServer) -> None:
    slack.hold("chat.postMessage", 2.0)
    client = SlackClient(TOKEN, slack.api_url, timeout=1)
    with pytest.raises(Transient):
        client.post("#incidents", "hello", BLOCKS, marker="post:late")
    # It took effect: this is what find_posted is for.
    slack.hold("chat.postMessage", 0.0)
    assert client.find_posted(slack.channel_id("incidents"), "post:late") is not None


def test_channel_id_keeps_ids_and_resolves_names_once(
    slack: SlackServer, client: SlackClient
) -> None:
    assert client.channel_id("C0123456789") == "C0123456789"
    assert client.channel_id("G0123456789") == "G0123456789"
    incidents = slack.channel_id("incidents")
    assert client.channel_id("#incidents") == incidents
    assert client.channel_id("incidents") == incidents
    assert calls_to(slack, "conversations.list") == 1  # cached per client
    with pytest.raises(Permanent, match="#nowhere"):
        client.channel_id("#nowhere")


def test_respond_posts_to_the_response_url(slack: SlackServer, client: SlackClient) -> None:
    message = {"response_type": "ephemeral", "text": "2 live incidents"}
    client.respond(slack.response_url("r1"), message)
    assert slack.responses("r1") == [message]


def test_respond_refuses_a_foreign_host(slack: SlackServer, client: SlackClient) -> None:
    for url in [
        "https://evil.example.com/hooks",
        "https://hooks.slack.com.evil.example/x",
        "https://hooks.slack.com@evil.example/x",
        f"http://127.0.0.1:{slack.port + 1}/response/r1",  # same host, another service
        "file:///etc/passwd",
        "not a url",
    ]:
        with pytest.raises(Permanent, match="refusing"):
            client.respond(url, {"text": "x"})
    assert not any(call.path.startswith("/response/") for call in slack.calls)


def test_respond_maps_a_used_url_to_permanent() -> None:
    with SlackServer(TOKEN, response_url_uses=1) as slack:
        client = SlackClient(TOKEN, slack.api_url, timeout=5)
        client.respond(slack.response_url("r1"), {"text": "one"})
        with pytest.raises(Permanent, match="404"):
            client.respond(slack.response_url("r1"), {"text": "two"})


def test_respond_to_a_down_server_is_transient(slack: SlackServer, client: SlackClient) -> None:
    slack.set_down("503")
    with pytest.raises(Transient, match="503"):
        client.respond(slack.response_url("r1"), {"text": "x"})
