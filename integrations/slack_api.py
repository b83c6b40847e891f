"""A thin Slack Web API client for the incident workflows: post, update, find, respond.

Retries. slack_sdk's `RateLimitErrorRetryHandler` would sleep a 429's Retry-After inside the
calling (worker) thread; it is left out and a 429 becomes `RateLimited`, which the caller
turns into a rescheduled delivery. Reads and `chat.update` (idempotent) keep slack_sdk's
connection-error retry, once. Posts get none: a connection dropped after Slack took the post
would otherwise post it twice. The caller checks `find_posted` before posting again."""

from __future__ import annotations

import http.client
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.web.slack_response import SlackResponse
from slack_sdk.webhook import WebhookClient

from integrations.outbound import OutboundError, Permanent, RateLimited, Transient, seconds

_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
# `ok: false` errors that say "Slack, not you": the same call may work later.
_TRANSIENT = {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
# URLError, TimeoutError and ConnectionError are OSErrors; RemoteDisconnected is both.
_NETWORK = (OSError, http.client.HTTPException)
METADATA_TYPE = "hub_effect"
PAGE_SIZE = 200
HISTORY_PAGES = 5  # markers are for a post whose answer was lost moments ago
LIST_PAGES = 20
SLACK_HOOKS = "hooks.slack.com"


@dataclass(frozen=True)
class Posted:
    channel_id: str
    ts: str


class SlackClient:
    def __init__(self, token: str, base_url: str, timeout: float = 10.0) -> None:
        wait_s = max(1, math.ceil(timeout))
        retry_once: list[RetryHandler] = [ConnectionErrorRetryHandler(max_retry_count=1)]
        self._web = WebClient(
            token=token, base_url=base_url, timeout=wait_s, retry_handlers=retry_once
        )
        self._web_once = WebClient(
            token=token, base_url=base_url, timeout=wait_s, retry_handlers=[]
        )
        self._timeout = wait_s
        self._origins = {("https", SLACK_HOOKS, 443), _origin(base_url)} - {None}
        self._ids: dict[str, str] = {}

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        *,
        marker: str,
        thread_ts: str | None = None,
    ) -> Posted:
        """Post, tagged with `marker` in the message metadata so it can be found again."""
        metadata = {"event_type": METADATA_TYPE, "event_payload": {"marker": marker}}
        resp = _call(
            "chat.postMessage",
            lambda: self._web_once.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                metadata=metadata,
                unfurl_links=False,
                unfurl_media=False,
            ),
        )
        return Posted(str(resp["channel"]), str(resp["ts"]))

    def update(self, channel_id: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        _call(
            "chat.update",
            lambda: self._web.chat_update(channel=channel_id, ts=ts, text=text, blocks=blocks),
        )

    def find_posted(
        self,
        channel_id: str,
        marker: str,
        *,
        thread_ts: str | None = None,
        oldest: float | None = None,
    ) -> Posted | None:
        """The message posted with `marker`, if Slack has it (a post whose answer was lost),
        looking back at most HISTORY_PAGES pages: in a thread when `thread_ts` is given."""
        channel = self.channel_id(channel_id)
        args: dict[str, Any] = {
            "channel": channel,
            "limit": PAGE_SIZE,
            "include_all_metadata": True,
        }
        if oldest is not None:
            args["oldest"] = f"{oldest:.6f}"
        for _ in range(HISTORY_PAGES):
            resp = self._history_page(args, thread_ts)
            for message in resp.get("messages") or []:
                if _marker_of(message) == marker:
                    return Posted(channel, str(message["ts"]))
            cursor = _next_cursor(resp)
            if not cursor:
                return None
            args["cursor"] = cursor
        return None

    def _history_page(self, args: dict[str, Any], thread_ts: str | None) -> SlackResponse:
        if thread_ts is None:
            return _call("conversations.history", lambda: self._web.conversations_history(**args))
        return _call(
            "conversations.replies", lambda: self._web.conversations_replies(ts=thread_ts, **args)
        )

    def whoami(self) -> tuple[dict[str, Any], str | None]:
        """`auth.test`: who the token is (`user`, `team`), and the answer's Date header."""
        resp = _call("auth.test", self._web.auth_test)
        data = resp.data if isinstance(resp.data, dict) else {}
        return dict(data), _header(resp.headers, "date")

    def is_member(self, channel: str) -> bool:
        """Whether the bot is in `channel` (a `#name` or an id): `conversations.info`."""
        channel_id = self.channel_id(channel)
        resp = _call("conversations.info", lambda: self._web.conversations_info(channel=channel_id))
        return bool((resp.get("channel") or {}).get("is_member"))

    def channel_id(self, name_or_id: str) -> str:
        """Ids as they are; `#name` looked up once per client (history and updates need the
        id, and conversations.list is one of Slack's most tightly limited methods)."""
        if _ID.match(name_or_id):
            return name_or_id
        name = name_or_id.removeprefix("#")
        if name not in self._ids:
            self._load_channels(name)
        if name not in self._ids:
            raise Permanent(f"channel #{name} not found (is the bot a member?)")
        return self._ids[name]

    def _load_channels(self, wanted: str) -> None:
        args: dict[str, Any] = {
            "types": "public_channel,private_channel",
            "exclude_archived": True,
            "limit": 1000,
        }
        for _ in range(LIST_PAGES):
            resp = _call("conversations.list", lambda: self._web.conversations_list(**args))
            for channel in resp.get("channels") or []:
                self._ids[str(channel["name"])] = str(channel["id"])
            cursor = _next_cursor(resp)
            if wanted in self._ids or not cursor:
                return
            args["cursor"] = cursor

    def respond(self, response_url: str, payload: dict[str, Any]) -> None:
        """Answer a slash command or an interaction through its response_url. The URL comes
        from a webhook body, so only Slack's hooks host (or the configured API's origin, a
        test server) is allowed: a forged payload must not make the hub POST elsewhere."""
        origin = _origin(response_url)
        if origin is None or origin not in self._origins:
            raise Permanent("response_url is not a Slack URL; refusing to post there")
        # No retry: a response whose answer was lost must not be shown twice.
        hook = WebhookClient(response_url, timeout=self._timeout, retry_handlers=[])
        try:
            resp = hook.send_dict(payload)
        except _NETWORK as exc:
            raise Transient(f"response_url: {type(exc).__name__}") from None
        except SlackClientError as exc:
            raise Permanent(f"response_url: {type(exc).__name__}") from None
        status = resp.status_code
        if status == 429:
            raise RateLimited("response_url rate limited", _retry_after(resp.headers))
        if status >= 500:
            raise Transient(f"response_url answered {status}")
        if status >= 400:  # used_url, expired_url, invalid_blocks: all final
            raise Permanent(f"response_url answered {status}: {str(resp.body)[:100]}")


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL without credentials; None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def _marker_of(message: dict[str, Any]) -> object:
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != METADATA_TYPE:
        return None
    return (metadata.get("event_payload") or {}).get("marker")


def _next_cursor(resp: SlackResponse) -> str:
    return str((resp.get("response_metadata") or {}).get("next_cursor") or "")


def _call(method: str, call: Callable[[], SlackResponse]) -> SlackResponse:
    """Run one Web API call; every failure leaves as an OutboundError naming the method
    (the SDK's own messages are not reused: they may quote the request)."""
    try:
        return call()
    except SlackApiError as exc:
        raise _mapped(method, exc.response) from None
    except _NETWORK as exc:
        raise Transient(f"{method}: {type(exc).__name__}") from None
    except SlackClientError as exc:  # a request slack_sdk refused to build
        raise Permanent(f"{method}: {type(exc).__name__}") from None


def _mapped(method: str, resp: SlackResponse) -> OutboundError:
    status = int(resp.status_code or 0)
    data = resp.data if isinstance(resp.data, dict) else {}
    error = str(data.get("error") or "") if status < 500 else ""
    if status == 429 or error == "ratelimited":
        return RateLimited(f"{method}: rate limited", _retry_after(resp.headers))
    if status >= 500 or status == 408 or error in _TRANSIENT:
        return Transient(f"{method}: HTTP {status} {error}".strip())
    # invalid_auth, not_authed, channel_not_found, is_archived, msg_too_long,
    # invalid_blocks, missing_scope, ...: the request or the setup is wrong.
    return Permanent(f"{method}: {error[:100] or f'HTTP {status}'}")


def _header(headers: Any, wanted: str) -> str | None:
    for name, value in dict(headers or {}).items():
        if str(name).lower() == wanted:
            return str(value[0] if isinstance(value, list) and value else value)
    return None


def _retry_after(headers: Any) -> float:
    """Slack's Retry-After, in seconds; a second when it is missing (Slack always sends it
    with a 429, but not always with an `ok: false` ratelimited)."""
    for name, value in dict(headers or {}).items():
        if str(name).lower() == "retry-after" and (wait := seconds(value)) is not None:
            return wait
    return 1.0
