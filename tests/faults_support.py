"""Helpers for the scale-out and fault-injection tests: `hub serve` / `hub worker`
subprocesses, a private `redis-server`, a mixed stream of signed deliveries from all three
providers, a paced sender that retries like the providers do, and the checks run afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import func, select

from hub.config import Settings
from hub.events.store import event_bodies, events, with_bodies
from hub.incidents.models import Incident
from hub.runtime.db import make_engine
from tests.conftest import settings_env
from tests.fakes.http import Call, Reply
from tests.fakes.slack import SlackServer
from tests.handlers import payloads as p
from tests.signing import github_request, slack_request, stripe_request

ACTIVE = {"received", "queued", "processing"}
SETTLED = {"processed", "ignored"}
# However busy the machine, a recovery still progressing after this long has failed.
MAX_SETTLE_S = 120.0
incidents_table = Incident.__table__  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_while_progressing(
    done: Callable[[], bool], progress: Callable[[], object], stall_s: float, what: str
) -> float:
    """Wait for `done` for as long as `progress()` keeps changing; fail once it has stood
    still for `stall_s`. Recovery is paced by the fault (Slack lets one post a second out
    per channel; retries back off), so how long it takes depends on how busy the machine
    is; a hub that stops getting anywhere is what must fail. MAX_SETTLE_S still bounds it."""
    start = last_change = time.monotonic()
    seen = progress()
    while time.monotonic() - start < MAX_SETTLE_S:
        if done():
            return time.monotonic() - start
        now = progress()
        if now != seen:
            seen, last_change = now, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            raise AssertionError(f"no progress for {stall_s} s (at {seen}) waiting for {what}")
        time.sleep(0.2)
    raise AssertionError(f"still progressing but not done after {MAX_SETTLE_S} s: {what}")


# --- processes ----------------------------------------------------------------------------


@dataclass
class Serve:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Processes:
    """`hub serve` and `hub worker` subprocesses, each in its own process group, run from a
    directory of their own (no developer's .env), logs kept for a failure message."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[subprocess.Popen[bytes]] = []

    def _start(self, args: list[str], settings: Settings, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", *args],
                env=settings_env(settings),
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(proc)
        return proc

    def serve(self, settings: Settings) -> Serve:
        port = free_port()
        log = self.workdir / f"serve-{port}.log"
        hub = Serve(self._start(["serve", "--port", str(port)], settings, log), port, log)
        wait_for(lambda: _ready(hub), 30, f"hub serve on {port} to be ready")
        return hub

    def worker(self, settings: Settings, threads: int = 4) -> subprocess.Popen[bytes]:
        log = self.workdir / f"worker-{len(self.started)}.log"
        args = ["worker", "--processes", "1", "--threads", str(threads)]
        return self._start(args, settings, log)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.workdir.glob("*.log"))
        )

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                kill(proc)


def kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _ready(hub: Serve) -> bool:
    if hub.proc.poll() is not None:
        raise AssertionError(f"hub serve exited with {hub.proc.returncode}:\n{hub.output()}")
    try:
        return httpx.get(f"{hub.url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class PrivateRedis:
    """A `redis-server` of this test's own, with nothing persisted: `restart()` gives an
    empty dataset on the same port, as a Redis without persistence comes back after a crash."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        wait_for(lambda: _pings(client), 10, "the private redis-server")
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def keys(self) -> int:
        client = redis.Redis.from_url(self.url)
        try:
            return int(client.dbsize())
        finally:
            client.close()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


class FaultySlack(SlackServer):
    """The Slack fake, plus "answer HTTP 500 to every call for the next N seconds"."""

    def __init__(self) -> None:
        self._fail_until = 0.0
        self.failed_500 = 0
        super().__init__()

    def fail_for(self, seconds: float) -> None:
        with self.lock:
            self._fail_until = time.time() + seconds

    def handle(self, call: Call) -> Reply:
        if call.path.startswith("/api/") and time.time() < self._fail_until:
            self.failed_500 += 1
            return Reply.text(500, "Internal Server Error")
        return super().handle(call)


# --- deliveries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One delivery as its sender would make it: signed afresh on every (re)try, as Stripe
    and Slack do (their signatures carry a timestamp)."""

    provider: str
    path: str
    body: bytes
    github_event: str | None = None
    github_delivery: str | None = None

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.github_delivery or _delivery_key(self.body)}"

    def signed(self) -> tuple[bytes, dict[str, str]]:
        if self.provider == "stripe":
            return stripe_request(self.body)
        if self.provider == "slack":
            return slack_request(self.body)
        assert self.github_event is not None
        payload = json.loads(self.body)
        return github_request(self.github_event, payload, delivery=self.github_delivery)


def _delivery_key(body: bytes) -> str:
    data = json.loads(body)
    return str(data.get("id") or data.get("event_id"))


@dataclass
class Mix:
    """A mixed stream: failed payments for a few accounts, a dispute now and then, CI failing
    on main in a few repos, GitHub pings, ignored Stripe events and Slack app mentions."""

    accounts: int = 3
    dispute_every: int = 60
    repos: int = 2
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    expected_keys: set[str] = field(default_factory=set)

    def delivery(self, i: int) -> Delivery:
        kind = i % 10
        if i % self.dispute_every == 0:
            dispute_id = f"dp_{self.run}_{i:05d}"
            self.expected_keys.add(f"stripe:dispute:{dispute_id}")
            obj = p.dispute(dispute_id=dispute_id)
            return self._stripe(p.stripe_event("charge.dispute.created", obj))
        if kind in (0, 1, 2, 3):
            account = f"acct_{self.run}_{i % self.accounts}"
            self.expected_keys.add(f"stripe:failed-payments:{account}")
            intent = p.payment_intent_failed(intent_id=f"pi_{uuid.uuid4().hex[:16]}")
            return self._stripe(
                p.stripe_event("payment_intent.payment_failed", intent, account=account)
            )
        if kind == 4:
            return self._stripe(p.stripe_event("customer.updated", {"id": "cus_1"}))
        if kind in (5, 6):
            repo = f"octo/svc-{self.run}-{i % self.repos}"
            self.expected_keys.add(f"github:ci:{repo}:CI")
            return _github("workflow_run", p.workflow_run("failure", "main", repo=repo))
        if kind == 7:
            return _github("ping", {"zen": "Design for failure.", "hook_id": 1})
        return _slack_mention()

    def warm_up(self) -> Delivery:
        """A GitHub ping: processed once a worker is up, opens nothing."""
        return _github("ping", {"zen": "Keep it logically awesome.", "hook_id": 1})

    def _stripe(self, event: dict[str, Any]) -> Delivery:
        event = {**event, "id": f"evt_{uuid.uuid4().hex[:24]}"}
        return Delivery("stripe", "/webhooks/stripe", json.dumps(event).encode())

    def deliveries(self, n: int) -> list[Delivery]:
        return [self.delivery(i) for i in range(n)]


def _github(event: str, payload: dict[str, Any]) -> Delivery:
    return Delivery(
        "github",
        "/webhooks/github",
        json.dumps(payload).encode(),
        github_event=event,
        github_delivery=str(uuid.uuid4()),
    )


def _slack_mention() -> Delivery:
    body = {
        "type": "event_callback",
        "team_id": "T0HUB",
        "api_app_id": "A0HUB",
        "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "event": {"type": "app_mention", "text": "<@U0HUB> status?", "channel": "C0HUB"},
    }
    return Delivery("slack", "/webhooks/slack/events", json.dumps(body).encode())


# --- sending ------------------------------------------------------------------------------


@dataclass
class Sender:
    """Posts deliveries at a steady rate from a pool of connections, to one or more hubs
    (round robin). A 503 or a connection error is retried with a fresh signature after a
    short backoff, as Stripe retries; anything else but a 2xx is a test failure."""

    urls: Sequence[str]
    rate: float = 50.0
    retry_for_s: float = 60.0
    acked: dict[str, str] = field(default_factory=dict)  # delivery key -> event id
    answers: Counter[int] = field(default_factory=Counter)
    retried_503: int = 0
    retried_errors: int = 0
    unexpected: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)
    sent: int = 0
    delivered: list[Delivery] = field(default_factory=list)
    last_unavailable: float = 0.0
    first_ok_after_outage: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=64))
        self.pool = ThreadPoolExecutor(48)

    def start(self, deliveries: Iterable[Delivery]) -> None:
        self._thread = threading.Thread(target=self._pace, args=(list(deliveries),), daemon=True)
        self._thread.start()

    def _pace(self, deliveries: list[Delivery]) -> None:
        begin = time.monotonic()
        for i, delivery in enumerate(deliveries):
            if self._stop.is_set():
                return
            pause = begin + i / self.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self.pool.submit(self.deliver, delivery, self.urls[i % len(self.urls)])
            self.delivered.append(delivery)
            self.sent += 1

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
        self.pool.shutdown(wait=True)

    def close(self) -> None:
        self._stop.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def deliver(self, delivery: Delivery, url: str) -> int:
        deadline = time.monotonic() + self.retry_for_s
        backoff = 0.1
        while True:
            status = self._post(delivery, url)
            if 200 <= status < 300 or status not in (0, 503):
                return status
            if time.monotonic() > deadline:
                with self._lock:
                    self.gave_up.append(delivery.key)
                return status
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    def _post(self, delivery: Delivery, url: str) -> int:
        body, headers = delivery.signed()
        try:
            r = self.client.post(url + delivery.path, content=body, headers=headers)
        except httpx.HTTPError:
            with self._lock:
                self.retried_errors += 1
                self.last_unavailable = time.monotonic()
            return 0
        with self._lock:
            self.answers[r.status_code] += 1
            if r.status_code == 503:
                self.retried_503 += 1
                self.last_unavailable = time.monotonic()
            elif 200 <= r.status_code < 300:
                self.acked.setdefault(delivery.key, r.json()["event_id"])
                if self.last_unavailable and not self.first_ok_after_outage:
                    self.first_ok_after_outage = time.monotonic()
            else:
                self.unexpected.append(f"{delivery.key}: {r.status_code} {r.text[:200]}")
        return r.status_code


# --- checks -------------------------------------------------------------------------------


def event_rows(settings: Settings) -> dict[str, tuple[str, str, bytes]]:
    """Event id -> (provider:delivery id, status, body)."""
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            stmt = select(
                events.c.id,
                events.c.provider,
                events.c.delivery_id,
                events.c.status,
                event_bodies.c.body,
            ).select_from(with_bodies)
            return {
                row.id: (f"{row.provider}:{row.delivery_id}", row.status, bytes(row.body))
                for row in conn.execute(stmt)
            }
    finally:
        engine.dispose()


def status_counts(settings: Settings) -> dict[str, int]:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            stmt = select(events.c.status, func.count()).group_by(events.c.status)
            return {status: n for status, n in conn.execute(stmt)}
    finally:
        engine.dispose()


def incident_rows(settings: Settings) -> list[Any]:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(incidents_table)))
    finally:
        engine.dispose()


def outbox_state(settings: Settings) -> str:
    """For a failure message: each open effect (its tries, when it is due, how long since it
    last changed, the incident's lease) and what the broker holds, one line each."""
    from hub.incidents.changes import effects

    engine = make_engine(settings.database_url)
    now = time.time()
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(effects, incidents_table.c.lease_until)
                .outerjoin(incidents_table, incidents_table.c.id == effects.c.incident_id)
                .where(effects.c.status.in_(("pending", "attempting")))
                .order_by(effects.c.id)
            ).all()
    finally:
        engine.dispose()

    def ago(t: Any) -> str:
        if t is None:
            return "-"
        age = now - t.timestamp()
        return f"{age:.1f}s_ago" if age >= 0 else f"in_{-age:.1f}s"

    lines = [
        f"effect {r.id} {r.kind} {r.incident_id} {r.status} failures={r.failures} "
        f"due={ago(r.not_before)} changed={ago(r.updated_at)} lease={ago(r.lease_until)} "
        f"error={(r.last_error or '')[:60]!r}"
        for r in rows
    ]
    if settings.redis_url:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1)
        ns, queue = settings.redis_namespace, settings.queue_name
        with contextlib.suppress(redis.RedisError):
            # Dramatiq's layout: a list per queue, a set per worker and queue of what it holds.
            held = {
                k.decode().split("__acks__.")[1]: client.scard(k)
                for k in client.scan_iter(f"{ns}:__acks__.*")
            }
            beats = {w.decode(): f"{now - t / 1000:.1f}s ago" for w, t in client.zscan_iter(
                f"{ns}:__heartbeats__")}  # fmt: skip
            lines.append(
                f"broker: {client.llen(f'{ns}:{queue}')} queued, "
                f"{client.llen(f'{ns}:{queue}.DQ')} delayed; held {held}; heartbeats {beats}"
            )
    return "open effects:\n" + "\n".join(lines or ["none"])


def drained(settings: Settings) -> bool:
    return not ACTIVE & set(status_counts(settings))


def all_posted(settings: Settings) -> bool:
    rows = incident_rows(settings)
    return bool(rows) and all(r.slack_ts is not None for r in rows)


def settled_count(settings: Settings) -> int:
    """Events out of the active states: a retry loop (queued, processing, queued) is not
    progress."""
    return sum(n for status, n in status_counts(settings).items() if status not in ACTIVE)


def posted_count(settings: Settings) -> int:
    return sum(1 for r in incident_rows(settings) if r.slack_ts is not None)


def check_events(settings: Settings, sender: Sender, sent: dict[str, Delivery]) -> list[str]:
    """Every delivery acknowledged, one row each, byte for byte, settled; problems as text."""
    rows = event_rows(settings)
    problems = [f"gave up on {k}" for k in sender.gave_up] + sender.unexpected
    by_key = Counter(key for key, _, _ in rows.values())
    problems += [f"{k}: {n} rows" for k, n in by_key.items() if n > 1]
    for key, delivery in sent.items():
        event_id = sender.acked.get(key)
        if event_id is None:
            problems.append(f"{key}: never acknowledged")
        elif event_id not in rows:
            problems.append(f"{key}: acknowledged as {event_id}, not in the database (LOST)")
        else:
            _, status, body = rows[event_id]
            if status not in SETTLED:
                problems.append(f"{key} ({event_id}): {status}")
            if body != delivery.body:
                problems.append(f"{key} ({event_id}): body differs from what was sent")
    strays = set(rows) - set(sender.acked.values())
    problems += [f"{e} ({rows[e][0]}) stored but never acknowledged" for e in sorted(strays)]
    return problems


def check_incidents(settings: Settings, slack: SlackServer, expected_keys: set[str]) -> list[str]:
    """One incident per grouping key, each with exactly one top-level Slack message."""
    rows = incident_rows(settings)
    problems: list[str] = []
    keys = Counter(r.key for r in rows)
    problems += [f"{k}: {n} incidents" for k, n in keys.items() if n > 1]
    missing = expected_keys - set(keys)
    problems += [f"{k}: no incident" for k in sorted(missing)]
    messages = slack.messages("#incidents")
    by_ts = Counter(m.ts for m in messages)
    posted = {r.slack_ts for r in rows}
    for r in rows:
        if r.slack_ts is None:
            problems.append(f"{r.id} ({r.key}): never posted")
        elif by_ts[r.slack_ts] != 1:
            problems.append(f"{r.id} ({r.key}): {by_ts[r.slack_ts]} messages at {r.slack_ts}")
    extra = [m for m in messages if m.ts not in posted]
    problems += [f"message {m.ts} belongs to no incident: {m.text[:80]!r}" for m in extra]
    return problems
