"""One log line per refused webhook request, held to a few per kind so a flood cannot fill
the disk, and the same lines kept for admins (hub/events/rejections.py).

A kind is (endpoint, error): at most `LINES` lines per `WINDOW_S` seconds each; the rest are
counted, and when the window ends one summary line says how many more there were
("… and 1,234 more like it in the last 10 s"). The summary is written by the next refusal of
that kind or, within a second, by the background tick, whichever comes first.

Cost on the event loop, refusals only (the success path never comes here): a lock, two
lookups and a comparison for a refusal held back; for one written, the log record (with its
fields bound for that one record) and a tuple handed to the store. Kinds are a fixed set (the
mounted endpoints plus `unknown`, times the outcomes), so the table never grows with traffic.

A line names the provider, the endpoint, the error code (the same word as the answer's
`error` and the metric's `outcome`), the status, the client address and the reason the
sender was told: never a body, a header value, a signature or a secret."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from hub.events.rejections import RejectionStore
from hub.ingest.meter import OUTCOMES, UNROUTED
from hub.runtime.logs import bind
from hub.runtime.periodic import Periodic

log = logging.getLogger("hub.ingest.rejections")

LINES = 10
WINDOW_S = 10.0
FLUSH_S = 1.0
_REASON_CHARS = 300
_CLIENT_CHARS = 64


class _Window:
    __slots__ = ("client", "held", "lines", "provider", "started", "status")

    def __init__(self, started: float, provider: str, status: int) -> None:
        self.started = started
        self.lines = 0
        self.held = 0
        self.provider = provider
        self.status = status
        self.client = ""


class RejectionLog:
    """Refusals in, rate-limited log lines (and rows for the store) out."""

    def __init__(
        self,
        store: RejectionStore | None = None,
        *,
        lines: int = LINES,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._lines = lines
        self._window_s = window_s
        self._clock = clock
        # endpoint -> one window per outcome: no key tuple built per refusal.
        self._windows: dict[str, list[_Window | None]] = {}
        # The event loop and the tick's thread both touch windows.
        self._lock = threading.Lock()

    def refused(
        self, provider: str, endpoint: str, status: int, outcome: int, *, reason: str, client: str
    ) -> None:
        now = self._clock()
        ended: tuple[str, int, int, str] | None = None
        with self._lock:
            slots = self._windows.get(endpoint)
            if slots is None:
                slots = self._windows[endpoint] = [None] * len(OUTCOMES)
            window = slots[outcome]
            if window is None or now - window.started >= self._window_s:
                if window is not None and window.held:
                    ended = (window.provider, window.status, window.held, window.client)
                window = slots[outcome] = _Window(now, provider, status)
            if window.lines >= self._lines:
                window.held += 1
                window.client = client
                write = False
            else:
                window.lines += 1
                write = True
        if ended is not None:
            self._summary(endpoint, outcome, ended)
        if write:
            self._line(provider, endpoint, status, outcome, reason=reason, client=client)

    def tick(self) -> None:
        """Write the summaries of windows that ended with refusals held back, then hand the
        gathered rows to the database (the background thread, once a second)."""
        now = self._clock()
        ended: list[tuple[str, int, tuple[str, int, int, str]]] = []
        with self._lock:
            for endpoint, slots in self._windows.items():
                for outcome, window in enumerate(slots):
                    if window is not None and now - window.started >= self._window_s:
                        slots[outcome] = None
                        if window.held:
                            held = (window.provider, window.status, window.held, window.client)
                            ended.append((endpoint, outcome, held))
        for endpoint, outcome, held in ended:
            self._summary(endpoint, outcome, held)
        if self.store is not None:
            self.store.flush()

    def writer(self) -> Periodic:
        """The background service: summaries and database writes once a second, and a last
        round at shutdown."""
        return Periodic("rejections", FLUSH_S, self.tick, last=self.tick)

    def _line(
        self, provider: str, endpoint: str, status: int, outcome: int, *, reason: str, client: str
    ) -> None:
        error = OUTCOMES[outcome]
        reason, client = _clean(reason, _REASON_CHARS), _clean(client, _CLIENT_CHARS)
        with bind(provider=provider, endpoint=endpoint, error=error, client=client):
            log.warning(
                "%s webhook refused at %s: %d %s: %s",
                provider,
                _where(endpoint),
                status,
                error,
                reason,
            )
        if self.store is not None:
            self.store.add((time.time(), provider, endpoint, status, error, reason, client, 1))

    def _summary(self, endpoint: str, outcome: int, ended: tuple[str, int, int, str]) -> None:
        provider, status, held, client = ended
        error = OUTCOMES[outcome]
        client = _clean(client, _CLIENT_CHARS)
        seconds = f"{self._window_s:g}"
        reason = (
            f"… and {held:,} more like it in the last {seconds} s "
            f"({status} {error}; the last from {client})"
        )
        with bind(provider=provider, endpoint=endpoint, error=error, client=client):
            log.warning("%s webhook refused at %s: %s", provider, _where(endpoint), reason)
        if self.store is not None:
            self.store.add((time.time(), provider, endpoint, status, error, reason, client, held))


def _where(endpoint: str) -> str:
    return "an unknown path" if endpoint == UNROUTED else f"/webhooks/{endpoint}"


def _clean(text: str, limit: int) -> str:
    """At most `limit` characters, one line: a path or an address is the sender's text."""
    text = text[:limit]
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")
