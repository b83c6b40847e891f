"""State behind `SlackServer`: channels, messages, threads and per-channel rate windows."""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
import re
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

# Names are lower case in Slack; ids are upper-case letters and digits with a type prefix.
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")
BOT_USER = "U0000000BOT"
BOT_ID = "B0000000BOT"
APP_ID = "A0000000APP"
TEAM_ID = "T0000000001"
AUTH_TEST = {
    "url": "https://fake-workspace.slack.com/",
    "team": "Fake Workspace",
    "user": "hub",
    "team_id": TEAM_ID,
    "user_id": BOT_USER,
    "bot_id": BOT_ID,
    "is_enterprise_install": False,
}


def flag(value: Any) -> bool:
    return value is True or str(value).lower() in {"1", "true"}


def structured(value: Any) -> Any:
    """Form bodies carry blocks and metadata as JSON strings; JSON bodies carry them as is."""
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


@dataclass(frozen=True)
class Message:
    """A snapshot of a stored message; `replies` is filled for thread parents."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    metadata: dict[str, Any] | None
    edits: int
    reply_broadcast: bool
    replies: tuple[Message, ...] = ()


@dataclass
class MessageState:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    metadata: dict[str, Any] | None
    reply_broadcast: bool = False
    edits: int = 0
    edited_ts: str | None = None
    replies: list[str] = field(default_factory=list)

    def snapshot(self, replies: tuple[Message, ...] = ()) -> Message:
        return Message(
            channel=self.channel,
            ts=self.ts,
            text=self.text,
            blocks=copy.deepcopy(self.blocks),
            thread_ts=self.thread_ts,
            metadata=copy.deepcopy(self.metadata),
            edits=self.edits,
            reply_broadcast=self.reply_broadcast,
            replies=replies,
        )


class Window:
    """At most `limit` accepted events in any sliding window of `window_s` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque()

    def retry_after(self, now: float) -> int | None:
        """None if one more event fits now, else whole seconds to wait, as Slack reports it."""
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()
        if len(self._times) < self.limit:
            return None
        return max(1, math.ceil(self._times[0] + self.window_s - now))

    def record(self, now: float) -> None:
        self._times.append(now)


@dataclass
class Channel:
    id: str
    name: str
    posts: Window
    updates: Window
    messages: dict[str, MessageState] = field(default_factory=dict)  # insertion order is ts order


def ts_key(ts: str) -> Decimal:
    try:
        return Decimal(ts)
    except InvalidOperation:
        return Decimal(-1)


def encode_cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def decode_cursor(cursor: str) -> str | None:
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return text.removeprefix("next_ts:") if text.startswith("next_ts:") else None


class SlackStore:
    def __init__(
        self,
        *,
        missing: set[str],
        post_limit: int,
        post_window_s: float,
        update_limit: int,
        update_window_s: float,
    ) -> None:
        self.missing = missing
        self._limits = (post_limit, post_window_s, update_limit, update_window_s)
        self._ids_by_name: dict[str, str] = {}
        self.channels: dict[str, Channel] = {}
        self._last_us = 0

    def channel(self, ref: str, *, by_name: bool) -> Channel | None:
        """Resolve an id, or with `by_name` a `#name`/`name` (created on first use)."""
        if CHANNEL_ID.match(ref):
            return self.channels.get(ref)
        name = ref.removeprefix("#")
        if not by_name or not name or name in self.missing:
            return None
        if name not in self._ids_by_name:
            post_limit, post_window, update_limit, update_window = self._limits
            cid = f"C{len(self.channels) + 1:010d}"
            self._ids_by_name[name] = cid
            self.channels[cid] = Channel(
                cid, name, Window(post_limit, post_window), Window(update_limit, update_window)
            )
        return self.channels[self._ids_by_name[name]]

    def next_ts(self) -> str:
        """Wall-clock based like Slack's, but strictly increasing even within a microsecond."""
        self._last_us = max(int(time.time() * 1_000_000), self._last_us + 1)
        return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"

    def add(
        self,
        ch: Channel,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None,
        thread_ts: str | None,
        metadata: dict[str, Any] | None,
        reply_broadcast: bool,
    ) -> MessageState:
        msg = MessageState(ch.id, self.next_ts(), text, blocks, None, metadata)
        if thread_ts is not None:
            parent = ch.messages[thread_ts]
            # A reply to a reply lands in the parent's thread, as in the Slack client.
            if parent.thread_ts is not None and parent.thread_ts != parent.ts:
                parent = ch.messages[parent.thread_ts]
            parent.thread_ts = parent.ts
            parent.replies.append(msg.ts)
            msg.thread_ts = parent.ts
            msg.reply_broadcast = reply_broadcast
        ch.messages[msg.ts] = msg
        return msg

    def history(
        self, ch: Channel, oldest: str, latest: str | None, *, inclusive: bool
    ) -> list[MessageState]:
        """Channel-level messages newest first; `oldest`/`latest` bounds are exclusive unless
        `inclusive`, as in conversations.history."""
        low, high = ts_key(oldest), ts_key(latest) if latest else None
        chosen = []
        for m in reversed(ch.messages.values()):
            key = ts_key(m.ts)
            if not (self.is_top_level(m) or m.reply_broadcast):
                continue
            if key < low or (key == low and not inclusive):
                continue
            if high is not None and (key > high or (key == high and not inclusive)):
                continue
            chosen.append(m)
        return chosen

    @staticmethod
    def thread(ch: Channel, ts: str) -> list[MessageState] | None:
        """The parent then its replies, given the ts of either; None if there is no such ts."""
        msg = ch.messages.get(ts)
        if msg is None:
            return None
        parent = ch.messages[msg.thread_ts] if msg.thread_ts else msg
        return [parent, *(ch.messages[r] for r in parent.replies)]

    def page(
        self,
        msgs: list[MessageState],
        *,
        cursor: str,
        limit: int,
        descending: bool,
        with_metadata: bool,
    ) -> dict[str, Any] | None:
        """One page of `msgs` in Slack's envelope; None for a cursor Slack would reject."""
        if cursor:
            start = decode_cursor(cursor)
            if start is None:
                return None
            key = ts_key(start)
            msgs = [m for m in msgs if (ts_key(m.ts) <= key if descending else ts_key(m.ts) >= key)]
        page, rest = msgs[:limit], msgs[limit:]
        return {
            "messages": [self.render(m, with_metadata=with_metadata) for m in page],
            "has_more": bool(rest),
            "pin_count": 0,
            "response_metadata": {"next_cursor": encode_cursor(rest[0].ts) if rest else ""},
        }

    @staticmethod
    def is_top_level(msg: MessageState) -> bool:
        return msg.thread_ts is None or msg.thread_ts == msg.ts

    def snapshot(self, ch: Channel, msg: MessageState) -> Message:
        return msg.snapshot(tuple(ch.messages[r].snapshot() for r in msg.replies))

    @staticmethod
    def render(msg: MessageState, *, with_metadata: bool) -> dict[str, Any]:
        """The message object as Slack's history, replies and post answers show it."""
        out: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": msg.text,
            "ts": msg.ts,
        }
        if msg.blocks is not None:
            out["blocks"] = copy.deepcopy(msg.blocks)
        if msg.thread_ts is not None:
            out["thread_ts"] = msg.thread_ts
        if msg.thread_ts is not None and msg.thread_ts != msg.ts:
            out["parent_user_id"] = BOT_USER
        if msg.reply_broadcast:
            out["subtype"] = "thread_broadcast"
        if msg.replies:
            out["reply_count"] = len(msg.replies)
            out["reply_users_count"] = 1
            out["reply_users"] = [BOT_USER]
            out["latest_reply"] = msg.replies[-1]
        if msg.edits:
            out["edited"] = {"user": BOT_USER, "ts": msg.edited_ts}
        if with_metadata and msg.metadata is not None:
            out["metadata"] = copy.deepcopy(msg.metadata)
        return out
