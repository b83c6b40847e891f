"""Graceful shutdown, as Kubernetes and compose do it: SIGTERM to the main process, then a
grace period, then SIGKILL.

`hub serve`: requests in flight get their answer (and a 2xx is a stored event), the process
exits 0 well inside the grace period, and whatever its in-process queue still held is
settled by the next start on the same database.

`hub worker`: messages being run are finished, messages fetched but not started go back to
Redis (not into the dead worker's unacknowledged set, where only a heartbeat timeout would
free them), the supervisor's children leave with it, and a fresh worker settles everything.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import select
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.cli.main import GRACEFUL_SHUTDOWN_S
from hub.config import Settings
from hub.events.store import events
from hub.runtime.db import make_engine
from hub.workers import STOP_MS
from tests.conftest import make_settings
from tests.serving import group_alive
from tests.signing import github_request, stripe_event, stripe_request
from tests.test_services import counts, wait_for

UVICORN_GRACE_S = GRACEFUL_SHUTDOWN_S
# The supervisor waits this long for its worker processes before SIGKILL.
WORKER_GRACE_S = STOP_MS / 1000 + 5
ACTIVE = {"received", "queued", "processing"}


def stored_ids(settings: Settings) -> set[str]:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        result = {row[0] for row in conn.execute(select(events.c.id))}
    engine.dispose()
    return result


# --- hub serve ---------------------------------------------------------------------------


@dataclass
class Senders:
    """Threads posting signed Stripe deliveries over keep-alive connections until the hub
    stops answering. Every answer is kept; a connection error before SIGTERM is a failure."""

    port: int
    sigterm_sent: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, limit: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        for _ in range(limit):  # bounded, whatever happens to the hub
            body, headers = stripe_request(stripe_event())
            try:
                conn.request("POST", "/webhooks/stripe", body=body, headers=headers)
                response = conn.getresponse()
                answer = (response.status, json.loads(response.read() or b"{}"))
                if response.getheader("connection", "").lower() == "close":
                    conn.close()  # the hub is draining: this connection is done
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if self.sigterm_sent.is_set():
                    return  # the hub closed its socket: what a sender would retry
                with self.lock:
                    self.errors.append(repr(exc))
                return
            with self.lock:
                self.answers.append(answer)
        conn.close()


def slow_delivery(port: int, release: threading.Event, result: list[Any]) -> None:
    """A delivery whose body is still arriving when SIGTERM comes: headers and half the body
    first, the rest only after the signal. uvicorn must wait for it, not cut it off."""
    body, headers = stripe_request(stripe_event())
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST /webhooks/stripe HTTP/1.1\r\nhost: 127.0.0.1\r\n{head}"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request + body[: len(body) // 2])
        result.append("headers sent")
        release.wait(30)
        time.sleep(1.0)  # well after SIGTERM: the hub is draining by now
        sock.sendall(body[len(body) // 2 :])
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    status_line, _, rest = raw.partition(b"\r\n")
    result.append((int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])))


def test_hub_serve_drains_in_flight_webhooks_on_sigterm_and_exits_0(sqlite_url, serve):
    settings = make_settings(sqlite_url, embedded_workers="process")  # the default
    hub = serve(settings)
    senders = Senders(hub.port)
    threads = [threading.Thread(target=senders.run, args=(5_000,)) for _ in range(6)]
    slow: list[Any] = []
    release = threading.Event()
    slow_thread = threading.Thread(target=slow_delivery, args=(hub.port, release, slow))
    slow_thread.start()
    for t in threads:
        t.start()
    wait_for(lambda: len(senders.answers) >= 300 and bool(slow), 30, "a stream of answers")

    hub.proc.send_signal(signal.SIGTERM)  # only the main process, as a kubelet does
    signalled = time.monotonic()
    senders.sigterm_sent.set()
    release.set()
    code = hub.proc.wait(timeout=UVICORN_GRACE_S + 10)
    took = time.monotonic() - signalled
    for t in [*threads, slow_thread]:
        t.join(timeout=30)

    assert code == 0, hub.output()
    assert took < UVICORN_GRACE_S, f"exit took {took:.1f} s"
    assert not senders.errors, senders.errors[:3]
    # The delivery still arriving at SIGTERM was read to the end, stored and answered.
    assert slow[-1][0] == 200, slow
    answered = [a for status, a in senders.answers if status == 200] + [slow[-1][1]]
    assert {status for status, _ in senders.answers} == {200}
    acked = {a["event_id"] for a in answered}
    stored = stored_ids(settings)
    assert acked <= stored, f"{len(acked - stored)} answered 200 but not stored"
    print(f"\n{len(acked)} acknowledged, {len(stored)} stored; exit 0 after {took:.1f} s")

    # Whatever the in-process queue held when it stopped is settled by the next start.
    again = serve(settings)
    wait_for(lambda: not ACTIVE & set(counts(settings)), 30, "every event settled")
    assert counts(settings) == {"ignored": len(stored)}
    again.proc.send_signal(signal.SIGTERM)
    assert again.proc.wait(timeout=UVICORN_GRACE_S + 10) == 0, again.output()


def test_hub_serve_exits_0_on_sigterm_while_idle_and_on_sigint(sqlite_url, serve):
    settings = make_settings(sqlite_url, embedded_workers="process")  # the default
    for sig in (signal.SIGTERM, signal.SIGINT):
        hub = serve(settings)
        hub.proc.send_signal(sig)
        assert hub.proc.wait(timeout=UVICORN_GRACE_S) == 0, hub.output()
        assert "Traceback" not in hub.output()
        # Its worker process (and multiprocessing's helper) left with it.
        wait_for(lambda p=hub.proc.pid: not group_alive(p), 10, "no process of hub serve left")


def test_plain_uvicorn_stops_on_sigterm_without_leaving_anything_behind(sqlite_url, serve):
    """`uvicorn --factory hub.bootstrap:create_app`, the embedded default: uvicorn ends by
    raising SIGTERM again, so the process dies of it without running its exit handlers.
    Nothing it made may need them: multiprocessing's tracker warned of a leaked semaphore
    (the API's count shared with its worker process) at every such stop."""
    settings = make_settings(sqlite_url, embedded_workers="process")
    hub = serve(settings, plain_uvicorn=True)
    body, headers = stripe_request(stripe_event())
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=10)
    conn.request("POST", "/webhooks/stripe", body=body, headers=headers)
    assert conn.getresponse().status == 200
    conn.close()
    hub.proc.send_signal(signal.SIGTERM)
    hub.proc.wait(timeout=UVICORN_GRACE_S)
    # The tracker is one of the group, and writes its warnings as it exits.
    wait_for(lambda p=hub.proc.pid: not group_alive(p), 10, "no process of uvicorn left")
    output = hub.output()
    assert "Application shutdown complete" in output, output
    assert "leaked" not in output and "Traceback" not in output, output


# --- hub worker (PostgreSQL + Redis) -------------------------------------------------------


def messages_in_queue(settings: Settings) -> list[list[str]]:
    """The event ids of each `route_events` message waiting in the Redis queue."""
    client = redis.Redis.from_url(settings.redis_url or "")
    key = f"{settings.redis_namespace}:{settings.queue_name}"
    found = []
    for message_id in client.lrange(key, 0, -1):
        data = client.hget(f"{key}.msgs", message_id)
        if data is None:
            continue
        message = json.loads(data)
        if message["actor_name"] == "route_events":
            found.append(list(message["args"][0]))
    client.close()
    return found


def unacked_messages(settings: Settings) -> int:
    """Messages some worker fetched and neither acknowledged nor gave back."""
    client = redis.Redis.from_url(settings.redis_url or "")
    pattern = f"{settings.redis_namespace}:__acks__.*"
    total = sum(int(client.scard(key)) for key in client.scan_iter(pattern))
    client.close()
    return total


def event_ids(settings: Settings, status: str) -> set[str]:
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(select(events.c.id).where(events.c.status == status))
        result = {row[0] for row in rows}
    engine.dispose()
    return result


def post_all(settings: Settings, requests: list[tuple[bytes, dict[str, str]]]) -> None:
    with TestClient(create_app(settings)) as client:
        for body, headers in requests:
            path = "github" if "x-github-event" in headers else "stripe"
            assert client.post(f"/webhooks/{path}", content=body, headers=headers).is_success


@pytest.mark.services
def test_hub_worker_on_sigterm_finishes_what_it_runs_and_gives_back_the_rest(
    prod_settings, hub_worker
):
    # Six groups, far enough apart to go out as six messages (a message carries the ids
    # that came within one hold): two run on the worker's two threads, the rest wait behind
    # them. Posted at once, the 60 could all go out in one message on a fast host, and
    # then nothing was left to give back.
    with TestClient(create_app(prod_settings)) as client:
        for _ in range(6):
            for _ in range(10):
                body, headers = github_request("ping", {"zen": "z", "hook_id": 1})
                assert client.post("/webhooks/github", content=body, headers=headers).is_success
            time.sleep(0.2)
    assert len(messages_in_queue(prod_settings)) >= 3
    # Recording outcomes waits on this lock: the worker is caught mid-message when signalled.
    lock = psycopg.connect(prod_settings.database_url.replace("+psycopg", ""), autocommit=False)
    lock.execute("LOCK TABLE attempts IN EXCLUSIVE MODE")
    first = hub_worker()
    wait_for(lambda: counts(prod_settings).get("processing", 0) > 0, 30, "a claimed batch")
    time.sleep(0.5)  # let the consumer prefetch behind the blocked threads
    held = event_ids(prod_settings, "processing")

    first.send_signal(signal.SIGTERM)  # the supervisor only, as a kubelet does
    time.sleep(2.0)
    assert first.poll() is None, "the worker left without finishing the messages it runs"
    lock.rollback()  # the database answers again: the running messages can finish
    lock.close()
    assert first.wait(timeout=WORKER_GRACE_S + 10) == 0
    wait_for(lambda: not group_alive(first.pid), 5, "the worker processes to exit")

    # What it ran is done; what it had fetched and not started is back in Redis.
    assert held <= event_ids(prod_settings, "processed")
    assert "processing" not in counts(prod_settings)
    waiting = event_ids(prod_settings, "queued")
    in_redis = {i for ids in messages_in_queue(prod_settings) for i in ids}
    assert waiting, "the worker ran everything: nothing was left to give back"
    assert waiting <= in_redis, f"{len(waiting - in_redis)} queued events are in no message"
    assert unacked_messages(prod_settings) == 0

    # Load keeps coming while no worker runs; the next worker settles all of it.
    post_all(prod_settings, [stripe_request(stripe_event()) for _ in range(20)])
    hub_worker()
    wait_for(
        lambda: counts(prod_settings) == {"processed": 60, "ignored": 20},
        30,
        "every event settled",
    )


@pytest.mark.services
def test_hub_worker_sigterm_mid_stream_loses_nothing(prod_settings, hub_worker):
    """No lock this time: deliveries stream in while one worker is stopped and another
    takes over."""
    first = hub_worker()
    stop = threading.Event()
    sent: list[int] = []

    def stream() -> None:
        with TestClient(create_app(prod_settings)) as client:
            for _ in range(2_000):  # bounded
                if stop.is_set():
                    return
                body, headers = github_request("ping", {"zen": "z", "hook_id": 1})
                response = client.post("/webhooks/github", content=body, headers=headers)
                assert response.status_code == 200
                sent.append(1)
                time.sleep(0.005)

    sender = threading.Thread(target=stream)
    sender.start()
    wait_for(lambda: counts(prod_settings).get("processed", 0) >= 50, 30, "work under way")
    first.send_signal(signal.SIGTERM)
    second = hub_worker()
    assert first.wait(timeout=WORKER_GRACE_S + 10) == 0
    time.sleep(1.0)
    stop.set()
    sender.join(timeout=30)
    total = len(sent)
    wait_for(lambda: counts(prod_settings) == {"processed": total}, 30, f"{total} processed")
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=WORKER_GRACE_S + 10) == 0
