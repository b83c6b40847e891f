"""A tiny threaded HTTP server that the provider fakes build on.

Each fake subclasses `FakeServer` and implements `handle(call) -> Reply`. Requests are handled
one at a time under `lock`: the fakes model ordering-sensitive things (rate windows, message
timestamps) and a fake that serialises requests is still far faster than the real services.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Literal, Self
from urllib.parse import parse_qs, parse_qsl, urlsplit

DownMode = Literal["close", "503"]


@dataclass
class Call:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any  # parsed JSON, a dict for form bodies, str for anything else, None if empty
    headers: dict[str, str]
    time: float
    status: int = 0  # filled in once answered; 0 means the connection was dropped
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        """Query string and body fields merged, body winning, as Slack reads them."""
        merged: dict[str, Any] = dict(self.query)
        if isinstance(self.body, dict):
            merged.update(self.body)
        return merged


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering
    delay_s: float = 0.0  # answer this late (the call has taken effect already)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        hdrs = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        return cls(status, json.dumps(payload).encode(), hdrs)

    @classmethod
    def text(cls, status: int, text: str, headers: dict[str, str] | None = None) -> Reply:
        hdrs = {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}
        return cls(status, text.encode(), hdrs)

    @classmethod
    def dropped(cls) -> Reply:
        return cls(0, drop=True)


def _parse_body(content_type: str, raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    if "json" in content_type:
        return json.loads(text)
    if "x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(text, keep_blank_values=True))
    return text


class _Handler(BaseHTTPRequestHandler):
    fake: ClassVar[FakeServer]
    # A stuck client must not pin a handler thread for the rest of the test run.
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        pass  # test output stays readable; every request is in `fake.calls` anyway

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        call = Call(
            method=self.command,
            path=split.path,
            query={k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()},
            body=None,
            headers={k.lower(): v for k, v in self.headers.items()},
            time=time.time(),
        )
        try:
            call.body = _parse_body(self.headers.get("Content-Type", ""), raw)
            reply = self.fake.dispatch(call)
        except Exception:
            # Surface bugs in the fake as a 500 the test can see, and keep them for assertions.
            self.fake.errors.append(traceback.format_exc())
            reply = Reply.text(500, "fake server error")
        if reply.delay_s:
            time.sleep(reply.delay_s)  # outside the fake's lock: inspection goes on meanwhile
        if reply.drop:
            self.close_connection = True
            return
        call.status, call.response_headers = reply.status, dict(reply.headers)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


class FakeServer:
    """ThreadingHTTPServer on 127.0.0.1 with an ephemeral port, serving from a daemon thread."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.calls: list[Call] = []
        self.errors: list[str] = []
        self._down: DownMode | None = None
        self._stopped = False
        handler = type(f"{type(self).__name__}Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_down(self, mode: DownMode = "close") -> None:
        """Until `set_up()`: "close" drops every connection unanswered, "503" answers 503."""
        with self.lock:
            self._down = mode

    def set_up(self) -> None:
        with self.lock:
            self._down = None

    def dispatch(self, call: Call) -> Reply:
        with self.lock:
            self.calls.append(call)
            if self._down == "close":
                return Reply.dropped()
            if self._down == "503":
                return Reply.text(503, "Service Unavailable")
            return self.handle(call)

    def handle(self, call: Call) -> Reply:
        raise NotImplementedError

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
