"""The fakes driven by the real clients, so the hub's outbound code can trust what they answer.

Slack here; GitHub in test_fakes_github.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from tests.fakes.slack import SlackServer

TOKEN = "xoxb-test-token"


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer(TOKEN, post_window_s=0.2, missing_channels=["#archived"]) as server:
        yield server
        assert server.errors == []


def web(server: SlackServer, token: str | None = TOKEN) -> WebClient:
    return WebClient(token=token, base_url=server.api_url, retry_handlers=[], timeout=5)


def slack_error(call: Callable[[], object]) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call()
    return info.value


def test_post_update_history_and_replies_round_trip(slack: SlackServer) -> None:
    client = web(slack)
    metadata = {"event_type": "incident_opened", "event_payload": {"incident_id": "inc_1"}}
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*CI broken*"}}]
    post = client.chat_postMessage(
        channel="#incidents", text="CI broken", blocks=blocks, metadata=metadata
    )
    channel, ts = post["channel"], post["ts"]
    assert channel == slack.channel_id("incidents") and post["message"]["text"] == "CI broken"

    time.sleep(0.2)
    reply = client.chat_postMessage(channel=channel, thread_ts=ts, text="acknowledged")
    assert float(reply["ts"]) > float(ts) and reply["message"]["thread_ts"] == ts
    update = client.chat_update(channel=channel, ts=ts, text="CI broken (ack)", blocks=blocks)
    assert update["ts"] == ts

    history = client.conversations_history(channel=channel, include_all_metadata=True)
    [parent] = history["messages"]  # the reply stays in its thread
    assert parent["ts"] == ts and parent["text"] == "CI broken (ack)"
    assert parent["metadata"] == metadata and parent["blocks"] == blocks
    assert parent["thread_ts"] == ts and parent["reply_count"] == 1
    plain = client.conversations_history(channel=channel)["messages"][0]
    assert "metadata" not in plain

    thread = client.conversations_replies(channel=channel, ts=ts)["messages"]
    assert [m["text"] for m in thread] == ["CI broken (ack)", "acknowledged"]

    [stored] = slack.messages("#incidents")
    assert stored.edits == 1 and stored.metadata == metadata
    assert [r.text for r in stored.replies] == ["acknowledged"]
    assert [r.ts for r in slack.replies(channel, ts)] == [reply["ts"]] and slack.posts == 2


def test_channel_names_ids_and_missing_channels(slack: SlackServer) -> None:
    client = web(slack)
    first = client.chat_postMessage(channel="#deploys", text="a")["channel"]
    time.sleep(0.2)
    assert client.chat_postMessage(channel="deploys", text="b")["channel"] == first
    assert slack.channel_id("#deploys") == first != slack.channel_id("#incidents")

    missing = slack_error(lambda: client.chat_postMessage(channel="#archived", text="x"))
    assert missing.response.status_code == 200 and missing.response["error"] == "channel_not_found"
    by_name = slack_error(lambda: client.conversations_history(channel="#deploys"))
    assert by_name.response["error"] == "channel_not_found"  # reads need the id


def test_post_rate_limit_is_per_channel_with_integer_retry_after(slack: SlackServer) -> None:
    client = web(slack)
    client.chat_postMessage(channel="#incidents", text="one")
    client.chat_postMessage(channel="#other", text="another channel has its own budget")

    limited = slack_error(lambda: client.chat_postMessage(channel="#incidents", text="two"))
    assert limited.response.status_code == 429 and limited.response["error"] == "ratelimited"
    assert int(limited.response.headers["Retry-After"]) >= 1
    assert slack.rate_limited == 1 and [m.text for m in slack.messages("#incidents")] == ["one"]

    time.sleep(0.21)
    client.chat_postMessage(channel="#incidents", text="two")
    assert slack.posts == 3


def test_defaults_are_slacks_one_post_per_second() -> None:
    with SlackServer(TOKEN) as server:
        client = web(server)
        client.chat_postMessage(channel="#incidents", text="one")
        limited = slack_error(lambda: client.chat_postMessage(channel="#incidents", text="two"))
        assert limited.response.headers["Retry-After"] == "1"


def test_update_has_its_own_limit() -> None:
    with SlackServer(TOKEN, update_limit=2) as server:
        client = web(server)
        post = client.chat_postMessage(channel="#incidents", text="v0")
        for n in (1, 2):
            client.chat_update(channel=post["channel"], ts=post["ts"], text=f"v{n}")
        limited = slack_error(
            lambda: client.chat_update(channel=post["channel"], ts=post["ts"], text="v3")
        )
        assert limited.response.status_code == 429
        assert int(limited.response.headers["Retry-After"]) > 1  # the window is a minute
        assert server.messages("#incidents")[0].text == "v2"


def test_auth_and_lookup_errors(slack: SlackServer) -> None:
    assert slack_error(lambda: web(slack, None).auth_test()).response["error"] == "not_authed"
    wrong = slack_error(lambda: web(slack, "xoxb-other").auth_test())
    assert wrong.response["error"] == "invalid_auth"

    client = web(slack)
    assert client.auth_test()["user_id"]
    channel = slack.channel_id("#incidents")
    orphan = slack_error(
        lambda: client.chat_postMessage(channel=channel, text="x", thread_ts="1.000000")
    )
    assert orphan.response["error"] == "thread_not_found"
    gone = slack_error(lambda: client.chat_update(channel=channel, ts="1.000000", text="x"))
    assert gone.response["error"] == "message_not_found"
    assert client.chat_postEphemeral(channel=channel, user="U1", text="only you")["ok"]
    assert slack.messages(channel) == [] and len(slack.ephemerals) == 1


def test_injected_failures(slack: SlackServer) -> None:
    client = web(slack)
    slack.fail_next("chat.postMessage", error="fatal_error")
    fatal = slack_error(lambda: client.chat_postMessage(channel="#incidents", text="x"))
    assert fatal.response.status_code == 200 and fatal.response["error"] == "fatal_error"

    slack.fail_next("chat.postMessage", status=500)
    server_error = slack_error(lambda: client.chat_postMessage(channel="#incidents", text="x"))
    assert server_error.response.status_code == 500 and slack.messages("#incidents") == []

    # The post lands but its answer is lost: history is how the hub finds it again.
    slack.fail_next("chat.postMessage", status=500, applied=True)
    slack_error(
        lambda: client.chat_postMessage(
            channel="#incidents", text="x", metadata={"event_type": "e", "event_payload": {"k": 1}}
        )
    )
    found = client.conversations_history(
        channel=slack.channel_id("#incidents"), include_all_metadata=True
    )
    assert [m["metadata"]["event_payload"] for m in found["messages"]] == [{"k": 1}]


def test_forced_429_and_outage(slack: SlackServer) -> None:
    client = web(slack)
    slack.force_429(retry_after_s=7, for_s=0.3)
    limited = slack_error(client.auth_test)
    assert limited.response.status_code == 429 and limited.response.headers["Retry-After"] == "7"
    time.sleep(0.3)
    assert client.auth_test()["ok"]

    slack.set_down("503")
    assert slack_error(client.auth_test).response.status_code == 503
    slack.set_down("close")
    with pytest.raises(ConnectionError):  # http.client.RemoteDisconnected
        client.auth_test()
    slack.set_up()
    assert client.auth_test()["ok"]


def test_history_window_and_cursor() -> None:
    with SlackServer(TOKEN, post_burst=5) as server:
        client = web(server)
        stamps = [
            client.chat_postMessage(channel="#incidents", text=str(n))["ts"] for n in range(4)
        ]
        channel = server.channel_id("#incidents")
        first = client.conversations_history(channel=channel, limit=3)
        assert [m["text"] for m in first["messages"]] == ["3", "2", "1"] and first["has_more"]
        rest = client.conversations_history(
            channel=channel, limit=3, cursor=first["response_metadata"]["next_cursor"]
        )
        assert [m["text"] for m in rest["messages"]] == ["0"] and not rest["has_more"]
        between = client.conversations_history(channel=channel, oldest=stamps[0], latest=stamps[3])
        assert [m["text"] for m in between["messages"]] == ["2", "1"]


def test_response_url_records_payloads(slack: SlackServer) -> None:
    hook = WebhookClient(slack.response_url("cmd-1"), timeout=5)
    for n in range(5):
        assert hook.send(text=f"update {n}", response_type="ephemeral").status_code == 200
    assert hook.send(text="one too many").status_code == 404
    payloads = slack.responses("cmd-1")
    assert len(payloads) == 5 and payloads[0] == {"text": "update 0", "response_type": "ephemeral"}
