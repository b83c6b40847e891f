"""A local Slack Web API for tests: `WebClient(token=..., base_url=slack.api_url)`.

What a slack_sdk client sees (the client always POSTs; reads put their arguments in the query
string, writes send JSON, and form bodies are accepted too):

- `Authorization: Bearer <token>` missing -> HTTP 200 `{"ok": false, "error": "not_authed"}`;
  another token -> `invalid_auth`. slack_sdk raises `SlackApiError` for every `ok: false`.
- `conversations.info` answers `is_member: true` for every channel it knows (by id).
- `chat.postMessage` takes a channel name (`#incidents`/`incidents`, created with a stable id
  on first use unless listed in `missing_channels` -> `channel_not_found`) or an id. Every
  other method needs the id that the post answered with, as the real API does.
- Posting more than `post_burst` messages to a channel within `post_window_s` (default: one per
  second) answers HTTP 429, `Retry-After: <whole seconds, at least 1>`,
  `{"ok": false, "error": "ratelimited"}`, and stores nothing. `chat.update` has its own window
  (`update_limit` per `update_window_s`, default 50 a minute, Slack's tier 3).
- With `retry_handlers=[]` every 429 and failure surfaces as `SlackApiError` at once; slack_sdk's
  default handlers retry connection errors only, and `RateLimitErrorRetryHandler` would sleep
  the Retry-After in the calling thread.
- Faults: `fail_next(method, n, status=500 | error="...")`, `force_429(retry_after_s, for_s)`,
  `rate_limit_next(method, n, retry_after_s=)`,
  `set_down("close" | "503")` / `set_up()`. A non-JSON 5xx body reaches the caller as
  `SlackApiError` with `response["error"]` "Received a response in a non-JSON format: ...".
  A dropped connection raises `http.client.RemoteDisconnected` (a ConnectionError), which
  slack_sdk's default `ConnectionErrorRetryHandler` retries once.
- `POST /response/<id>` stands in for `response_url`: JSON payloads are recorded and answered
  `{"ok": true}`; after `response_url_uses` (Slack allows 5) it answers 404 `used_url`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tests.fakes.http import Call, FakeServer, Reply
from tests.fakes.slack_store import (
    AUTH_TEST,
    Message,
    MessageState,
    SlackStore,
    flag,
    structured,
)

Params = dict[str, Any]
_Method = Callable[[Params, float], Reply]


@dataclass(frozen=True)
class _Fault:
    status: int
    error: str | None
    applied: bool

    def reply(self) -> Reply:
        if self.error is None:
            return Reply.text(self.status, "Internal Server Error")
        return Reply.json(self.status, {"ok": False, "error": self.error})


def _ok(**fields: Any) -> Reply:
    return Reply.json(200, {"ok": True, **fields})


def _err(error: str, status: int = 200) -> Reply:
    return Reply.json(status, {"ok": False, "error": error})


class SlackServer(FakeServer):
    def __init__(
        self,
        token: str = "xoxb-test-token",
        *,
        channels: Iterable[str] = ("incidents",),
        missing_channels: Iterable[str] = (),
        post_burst: int = 1,
        post_window_s: float = 1.0,
        update_limit: int = 50,
        update_window_s: float = 60.0,
        response_url_uses: int = 5,
    ) -> None:
        self.token = token
        self.response_url_uses = response_url_uses
        self._store = SlackStore(
            missing={c.removeprefix("#") for c in missing_channels},
            post_limit=post_burst,
            post_window_s=post_window_s,
            update_limit=update_limit,
            update_window_s=update_window_s,
        )
        for name in channels:  # ids handed out in this order, so tests can rely on them
            self._store.channel(name, by_name=True)
        self._faults: dict[str, deque[_Fault]] = {}
        self._forced: tuple[float, int] = (0.0, 0)  # (until, retry_after)
        self._holds: dict[str, float] = {}
        self._limited: dict[str, deque[int]] = {}
        self._posts = 0
        self._rate_limited = 0
        self._responses: dict[str, list[Any]] = {}
        self.ephemerals: list[Params] = []
        self._methods: dict[str, _Method] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "conversations.list": self._list,
            "conversations.info": self._info,
        }
        super().__init__()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    # knobs

    def fail_next(
        self,
        method: str,
        n: int = 1,
        *,
        status: int | None = None,
        error: str | None = None,
        applied: bool = False,
    ) -> None:
        """The next `n` calls of `method` ("*" for any) fail: with `error`, an HTTP 200
        `ok: false` answer (or `status` if given); else HTTP `status` (500) with a text body.
        `applied=True` lets the call take effect first, like a post whose answer was lost."""
        fault = _Fault(status or (500 if error is None else 200), error, applied)
        with self.lock:
            self._faults.setdefault(method, deque()).extend([fault] * n)

    def hold(self, method: str, seconds: float) -> None:
        """Calls of `method` take effect at once but are answered `seconds` later: the
        window in which a client can die after the call and before recording it."""
        with self.lock:
            self._holds[method] = seconds

    def rate_limit_next(self, method: str, n: int = 1, *, retry_after_s: int = 1) -> None:
        """The next `n` calls of `method` answer 429 with this Retry-After, whenever they
        come (`force_429` is a window of time, which a slow start can miss)."""
        with self.lock:
            self._limited.setdefault(method, deque()).extend([retry_after_s] * n)

    def force_429(self, retry_after_s: int, for_s: float) -> None:
        """Every API method answers 429 with this Retry-After for the next `for_s` seconds."""
        with self.lock:
            self._forced = (time.time() + for_s, retry_after_s)

    # inspection

    def channel_id(self, name: str) -> str:
        with self.lock:
            ch = self._store.channel(name, by_name=True)
            if ch is None:
                raise KeyError(name)
            return ch.id

    def messages(self, channel: str) -> list[Message]:
        """Top-level messages, oldest first, each with its edit count and thread replies."""
        with self.lock:
            ch = self._store.channel(channel, by_name=True)
            if ch is None:
                return []
            return [
                self._store.snapshot(ch, m)
                for m in ch.messages.values()
                if self._store.is_top_level(m)
            ]

    def replies(self, channel: str, ts: str) -> list[Message]:
        with self.lock:
            ch = self._store.channel(channel, by_name=True)
            parent = ch.messages.get(ts) if ch else None
            if ch is None or parent is None:
                return []
            return [ch.messages[r].snapshot() for r in parent.replies]

    @property
    def posts(self) -> int:
        with self.lock:
            return self._posts

    @property
    def rate_limited(self) -> int:
        with self.lock:
            return self._rate_limited

    def response_url(self, response_id: str) -> str:
        return f"{self.url}/response/{response_id}"

    def responses(self, response_id: str) -> list[Any]:
        with self.lock:
            return list(self._responses.get(response_id, []))

    # dispatch

    def handle(self, call: Call) -> Reply:
        if call.path.startswith("/response/"):
            return self._response_url(call)
        if not call.path.startswith("/api/"):
            return Reply.text(404, "Not Found")
        method, now = call.path.removeprefix("/api/"), time.time()
        until, retry_after = self._forced
        if now < until:
            return self._ratelimited(retry_after)
        with self.lock:
            limited = self._limited.get(method)
            if limited:
                return self._ratelimited(limited.popleft())
        fault = self._take_fault(method)
        if fault is not None and not fault.applied:
            return fault.reply()
        auth = call.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth.removeprefix("Bearer ").strip():
            return _err("not_authed")
        if auth.removeprefix("Bearer ").strip() != self.token:
            return _err("invalid_auth")
        handler = self._methods.get(method)
        if handler is None:
            return _err("unknown_method", 404)
        reply = handler(call.params, now)
        reply = fault.reply() if fault is not None else reply
        reply.delay_s = self._holds.get(method, 0.0)
        return reply

    def _take_fault(self, method: str) -> _Fault | None:
        for key in (method, "*"):
            queue = self._faults.get(key)
            if queue:
                return queue.popleft()
        return None

    def _ratelimited(self, retry_after: int) -> Reply:
        self._rate_limited += 1
        return Reply.json(
            429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
        )

    def _response_url(self, call: Call) -> Reply:
        rid = call.path.removeprefix("/response/")
        if call.method != "POST" or not isinstance(call.body, dict):
            return _err("invalid_payload", 400)
        sent = self._responses.setdefault(rid, [])
        if len(sent) >= self.response_url_uses:
            return _err("used_url", 404)
        sent.append(call.body)
        return _ok()

    # methods

    def _auth_test(self, p: Params, now: float) -> Reply:
        return _ok(**AUTH_TEST)

    def _post_message(self, p: Params, now: float) -> Reply:
        ch = self._store.channel(str(p.get("channel", "")), by_name=True)
        if ch is None:
            return _err("channel_not_found")
        blocks, text = structured(p.get("blocks")), p.get("text")
        if not text and not blocks and not p.get("attachments"):
            return _err("no_text")
        thread_ts = p.get("thread_ts") or None
        if thread_ts is not None and str(thread_ts) not in ch.messages:
            return _err("thread_not_found")
        retry_after = ch.posts.retry_after(now)
        if retry_after is not None:
            return self._ratelimited(retry_after)
        ch.posts.record(now)
        msg = self._store.add(
            ch,
            text=str(text or ""),
            blocks=blocks,
            thread_ts=None if thread_ts is None else str(thread_ts),
            metadata=structured(p.get("metadata")),
            reply_broadcast=flag(p.get("reply_broadcast")),
        )
        self._posts += 1
        rendered = self._store.render(msg, with_metadata=True)
        return _ok(channel=ch.id, ts=msg.ts, message=rendered)

    def _update(self, p: Params, now: float) -> Reply:
        ch = self._store.channel(str(p.get("channel", "")), by_name=False)
        if ch is None:
            return _err("channel_not_found")
        msg = ch.messages.get(str(p.get("ts", "")))
        if msg is None:
            return _err("message_not_found")
        blocks, text = structured(p.get("blocks")), p.get("text")
        if text is None and blocks is None:
            return _err("no_text")
        retry_after = ch.updates.retry_after(now)
        if retry_after is not None:
            return self._ratelimited(retry_after)
        ch.updates.record(now)
        if text is not None:
            msg.text = str(text)
        if blocks is not None:
            msg.blocks = blocks
        if p.get("metadata") is not None:
            msg.metadata = structured(p.get("metadata"))
        msg.edits += 1
        msg.edited_ts = self._store.next_ts()
        rendered = self._store.render(msg, with_metadata=True)
        return _ok(channel=ch.id, ts=msg.ts, text=msg.text, message=rendered)

    def _post_ephemeral(self, p: Params, now: float) -> Reply:
        if self._store.channel(str(p.get("channel", "")), by_name=True) is None:
            return _err("channel_not_found")
        if not p.get("user"):
            return _err("user_not_in_channel")
        self.ephemerals.append(dict(p))
        return _ok(message_ts=self._store.next_ts())

    def _history(self, p: Params, now: float) -> Reply:
        ch = self._store.channel(str(p.get("channel", "")), by_name=False)
        if ch is None:
            return _err("channel_not_found")
        latest = str(p["latest"]) if p.get("latest") else None
        oldest, inclusive = str(p.get("oldest") or "0"), flag(p.get("inclusive"))
        chosen = self._store.history(ch, oldest, latest, inclusive=inclusive)
        return self._page(chosen, p, descending=True)

    def _replies(self, p: Params, now: float) -> Reply:
        ch = self._store.channel(str(p.get("channel", "")), by_name=False)
        thread = self._store.thread(ch, str(p.get("ts", ""))) if ch else None
        if ch is None or thread is None:
            return _err("channel_not_found" if ch is None else "thread_not_found")
        return self._page(thread, p, descending=False)

    def _list(self, p: Params, now: float) -> Reply:
        # The channels the bot can see, one page: enough for name -> id lookups in tests.
        channels = [
            {"id": ch.id, "name": ch.name, "is_channel": True, "is_member": True}
            for ch in self._store.channels.values()
        ]
        return _ok(channels=channels, response_metadata={"next_cursor": ""})

    def _info(self, p: Params, now: float) -> Reply:
        ch = self._store.channel(str(p.get("channel", "")), by_name=False)
        if ch is None:
            return _err("channel_not_found")
        return _ok(channel={"id": ch.id, "name": ch.name, "is_channel": True, "is_member": True})

    def _page(self, msgs: list[MessageState], p: Params, *, descending: bool) -> Reply:
        cursor = str(p.get("cursor") or "")
        limit = max(1, min(int(p.get("limit") or 100), 1000))
        page = self._store.page(
            msgs,
            cursor=cursor,
            limit=limit,
            descending=descending,
            with_metadata=flag(p.get("include_all_metadata")),
        )
        return _err("invalid_cursor") if page is None else _ok(**page)


__all__ = ["Message", "SlackServer"]
