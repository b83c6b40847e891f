"""Fault injection under load: while signed Stripe, GitHub and Slack deliveries flow into a
`hub serve` at about 50 a second, a worker is SIGKILLed, Redis comes back empty, PostgreSQL
goes away, Slack answers 500 and then 429; and all of these at once, for longer. Afterwards
every acknowledged delivery is one row, byte for byte, `processed` or `ignored` within a
bounded wait, and every incident has exactly one Slack message.

`pytest -m faults` runs just these. They need PostgreSQL and a `redis-server` binary (each
test runs a Redis of its own, so restarting it disturbs nobody); required under CI=true."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from hub.config import Settings
from tests.conftest import _unavailable, make_settings
from tests.faults_support import (
    FaultySlack,
    Mix,
    PrivateRedis,
    Processes,
    Sender,
    all_posted,
    check_events,
    check_incidents,
    drained,
    kill,
    outbox_state,
    posted_count,
    settled_count,
    status_counts,
    wait_for,
    wait_while_progressing,
)
from tests.proxy import Proxy, in_front_of

# Longer than the suite's 120 s: the stream (up to 31 s of faults), then each settle stage
# may take up to MAX_SETTLE_S while it keeps progressing (tests/faults_support.py).
pytestmark = [pytest.mark.services, pytest.mark.faults, pytest.mark.timeout(300)]

RATE = 50.0
STREAM_S = 10.0
FAULT_AT_S = 3.0  # into the stream
# After the stream, every event settled and every incident posted, for as long as either
# keeps moving; this long without one more event settled or one more post fails the test.
STALL_S = 20.0


@pytest.fixture
def slack() -> Iterator[FaultySlack]:
    with FaultySlack() as server:
        yield server


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        _unavailable("redis-server", "the binary is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.close()


@pytest.fixture
def fault_settings(postgres_url: str, private_redis: PrivateRedis, slack: FaultySlack) -> Settings:
    """Production mode with every recovery clock short: a lost message is sent again after
    3 s, a dead worker's claim is taken back after 3 s, an effect retried after 0.2 s."""
    return make_settings(
        postgres_url,
        redis_url=private_redis.url,
        broker_heartbeat_timeout_ms=5_000,
        slack_bot_token=slack.token,
        slack_api_url=slack.api_url,
        effect_lease_s=3.0,
        effect_min_backoff_s=0.2,
        requeue_queued_after_s=3.0,
    )


def database_proxy(settings: Settings) -> tuple[Proxy, Settings]:
    """A proxy in front of PostgreSQL (up), and the settings that reach it through it."""
    proxy, url = in_front_of(settings.database_url)
    proxy.up()
    return proxy, settings.model_copy(update={"database_url": url})


def run_stream(
    settings: Settings,
    processes: Processes,
    fault: Callable[[], None],
    *,
    workers: int = 2,
    api_settings: Settings | None = None,
    mix: Mix | None = None,
) -> tuple[Sender, Mix, float, float]:
    """Start one API and `workers` workers, stream deliveries, run `fault` FAULT_AT_S into
    the stream; returns the sender, the mix, the time the fault ended and the stream ended."""
    api = processes.serve(api_settings or settings)
    for _ in range(workers):
        processes.worker(api_settings or settings)
    mix = mix or Mix(accounts=3, dispute_every=100, repos=2)
    sender = Sender([api.url], rate=RATE)
    # Workers take seconds to start on a busy machine: the faults must meet a running hub.
    warm_up = mix.warm_up()
    assert sender.deliver(warm_up, api.url) == 200
    sender.delivered.append(warm_up)
    wait_for(lambda: drained(settings), 60, "the warm-up event processed")
    sender.start(mix.deliveries(int(RATE * STREAM_S)))
    time.sleep(FAULT_AT_S)
    fault()
    restored = time.monotonic()
    sender.join(STREAM_S + 60)
    return sender, mix, restored, time.monotonic()


def settle_and_check(
    name: str,
    settings: Settings,
    processes: Processes,
    slack: FaultySlack,
    run: tuple[Sender, Mix, float, float],
) -> None:
    sender, mix, restored, stream_end = run
    try:
        wait_while_progressing(
            lambda: drained(settings),
            lambda: settled_count(settings),
            STALL_S,
            "every event settled",
        )
        settled = time.monotonic()
        wait_while_progressing(
            lambda: all_posted(settings),
            lambda: posted_count(settings),
            STALL_S,
            "every incident posted",
        )
        posted = time.monotonic()
    except AssertionError as exc:
        state = f"{status_counts(settings)}\n{outbox_state(settings)}"
        raise AssertionError(f"{exc}: {state}\n{processes.logs()}") from exc
    finally:
        sender.close()
    first_ok = (
        f"{sender.first_ok_after_outage - restored:+.1f} s"
        if sender.first_ok_after_outage
        else "n/a (none refused)"
    )
    updates = sum(1 for c in slack.calls if c.path == "/api/chat.update" and c.status == 200)
    limited = Counter(c.path.removeprefix("/api/") for c in slack.calls if c.status == 429)
    arrivals = [c.time for c in slack.calls if c.path == "/api/chat.postMessage"]
    gap = min((b - a for a, b in pairwise(arrivals)), default=0.0)
    print(
        f"\n{name}: sent {sender.sent}, acked {len(sender.acked)}, answers "
        f"{dict(sender.answers)}, 503s retried {sender.retried_503}, connection errors "
        f"retried {sender.retried_errors}, first 2xx after a refusal: {first_ok} after "
        f"the fault ended; "
        f"events {status_counts(settings)}; settled {settled - stream_end:.1f} s and all "
        f"posted {posted - stream_end:.1f} s after the stream (recovered in "
        f"{settled - restored:.1f} s from the fault's end); {len(slack.messages('#incidents'))} "
        f"incidents, {slack.posts} posts, {updates} updates, {slack.failed_500} Slack 500s, "
        f"{slack.rate_limited} Slack 429s {dict(limited)}, closest two posts {gap:.3f} s apart"
    )
    sent = {d.key: d for d in sender.delivered}
    problems = check_events(settings, sender, sent) + check_incidents(
        settings, slack, mix.expected_keys
    )
    assert not problems, "\n".join(problems[:50])


def test_a_worker_sigkilled_mid_stream_loses_nothing(
    fault_settings: Settings, processes: Processes, slack: FaultySlack
) -> None:
    def fault() -> None:
        victim = processes.started[1]  # the first worker (0 is `hub serve`)
        print(f"\nat the SIGKILL: {status_counts(fault_settings)}")
        kill(victim)
        time.sleep(1.0)
        processes.worker(fault_settings)

    run = run_stream(fault_settings, processes, fault)
    settle_and_check("worker SIGKILL", fault_settings, processes, slack, run)


def test_redis_restarted_empty_mid_stream_loses_nothing(
    fault_settings: Settings,
    processes: Processes,
    slack: FaultySlack,
    private_redis: PrivateRedis,
) -> None:
    def fault() -> None:
        print(f"\nat the restart: {private_redis.keys()} Redis keys lost")
        private_redis.stop()  # SIGKILL: the queue, the rate-limit windows, all gone
        time.sleep(2.0)
        private_redis.start()

    run = run_stream(fault_settings, processes, fault)
    settle_and_check("Redis restarted empty", fault_settings, processes, slack, run)


def test_postgres_unavailable_mid_stream_answers_503_and_loses_nothing(
    fault_settings: Settings, processes: Processes, slack: FaultySlack
) -> None:
    proxy, via_proxy = database_proxy(fault_settings)

    def fault() -> None:
        proxy.down()  # open connections dropped, new ones refused: API and workers alike
        time.sleep(4.0)
        proxy.up()

    try:
        run = run_stream(fault_settings, processes, fault, api_settings=via_proxy)
        settle_and_check("PostgreSQL down 4 s", fault_settings, processes, slack, run)
    finally:
        proxy.down()
    assert run[0].retried_503 + run[0].retried_errors > 0, "the outage was never seen"


def test_slack_500s_then_429s_mid_stream_post_each_incident_once(
    fault_settings: Settings, processes: Processes, slack: FaultySlack
) -> None:
    def fault() -> None:
        wait_for(lambda: slack.posts > 0, 20, "the first Slack post")
        slack.fail_for(4.0)
        time.sleep(4.0)
        slack.force_429(retry_after_s=1, for_s=4.0)
        time.sleep(4.0)

    # A dispute every half second: more new incidents than Slack's one post a second per
    # channel lets out, so the hub is calling Slack all through both faults.
    mix = Mix(accounts=3, dispute_every=25, repos=2)
    run = run_stream(fault_settings, processes, fault, mix=mix)
    settle_and_check("Slack 500 then 429", fault_settings, processes, slack, run)
    assert slack.failed_500 >= 3
    assert slack.rate_limited >= 3


def test_everything_failing_at_once_for_15_s_loses_nothing(
    fault_settings: Settings,
    processes: Processes,
    slack: FaultySlack,
    private_redis: PrivateRedis,
) -> None:
    """The faults above, overlapping and longer: PostgreSQL unreachable for 15 s (API and
    workers alike), inside that window a worker SIGKILLed and replaced (the replacement
    starts while the database is still away) and Redis restarted empty; then, as the hub
    catches up, Slack answering 500 for 6 s and 429 for 4 s."""
    proxy, via_proxy = database_proxy(fault_settings)
    replacement: list[subprocess.Popen[bytes]] = []

    def fault() -> None:
        proxy.down()
        kill(processes.started[1])
        print(f"\nat the restart: {private_redis.keys()} Redis keys lost")
        private_redis.stop()
        time.sleep(3.0)
        private_redis.start()
        replacement.append(processes.worker(via_proxy))
        time.sleep(12.0)
        proxy.up()

        # The workers could not reach Slack while the database was away; the faults meet
        # them on the way back, from their first call (seconds after the database returns on
        # a slow host: deliveries lost with Redis wait for the stranded-effects sweep).
        def chat_calls() -> int:
            return sum(call.path.startswith("/api/chat.") for call in list(slack.calls))

        before = chat_calls()
        wait_for(lambda: chat_calls() > before, 60, "a post or update once the database is back")
        slack.fail_for(6.0)
        time.sleep(6.0)
        slack.force_429(retry_after_s=1, for_s=4.0)
        time.sleep(4.0)

    mix = Mix(accounts=3, dispute_every=25, repos=2)
    try:
        run = run_stream(fault_settings, processes, fault, api_settings=via_proxy, mix=mix)
        settle_and_check("all at once, 15 s", fault_settings, processes, slack, run)
    finally:
        proxy.down()
    assert run[0].retried_503 + run[0].retried_errors > 0, "the outage was never seen"
    assert slack.failed_500 >= 1 and slack.rate_limited >= 1, "Slack's faults were never met"
    # It waited for the database rather than exiting, and took its share once it came back.
    assert replacement[0].poll() is None, "the replacement worker exited"
