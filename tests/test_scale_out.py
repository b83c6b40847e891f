"""Scale-out: two `hub serve` and three `hub worker` processes on one PostgreSQL and one
Redis, as a platform team runs the hub behind a load balancer.

Every delivery is sent to both APIs at once (a sender's retry racing its original): one row
each. Bursts of failed payments and disputes: one incident per grouping key, one Slack
message per incident, and no 429 from Slack, because the rate limits are shared by every
worker process. Required under CI=true; skipped with a reason without the services."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hub.config import Settings
from tests.conftest import with_slack
from tests.fakes.slack import SlackServer
from tests.faults_support import (
    Delivery,
    Mix,
    Processes,
    Sender,
    all_posted,
    check_events,
    check_incidents,
    drained,
    status_counts,
    wait_for,
)

pytestmark = pytest.mark.services

DELIVERIES = 300
RATE = 75.0  # deliveries a second, each sent to both APIs


@pytest.fixture
def prod_settings(prod_settings: Settings, slack: SlackServer) -> Settings:
    return with_slack(prod_settings, slack, effect_min_backoff_s=0.2, requeue_queued_after_s=5.0)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.close()


def test_two_apis_and_three_workers_store_once_and_post_once(
    prod_settings: Settings, slack: SlackServer, processes: Processes
) -> None:
    apis = [processes.serve(prod_settings), processes.serve(prod_settings)]
    for _ in range(3):
        processes.worker(prod_settings, threads=4)
    mix = Mix(accounts=4, dispute_every=30, repos=2)
    deliveries = mix.deliveries(DELIVERIES)
    sender = Sender([api.url for api in apis], rate=RATE)

    def both(delivery: Delivery) -> None:
        # The same delivery to each API at the same moment: a retry racing the original.
        list(twice.map(sender.deliver, [delivery] * 2, [a.url for a in apis]))

    start = time.monotonic()
    with ThreadPoolExecutor(64) as twice, ThreadPoolExecutor(32) as pool:
        futures = []
        for i, delivery in enumerate(deliveries):
            pause = start + i / RATE - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            futures.append(pool.submit(both, delivery))
        for future in futures:
            future.result()
    sent_s = time.monotonic() - start
    try:
        drain_s = wait_for(lambda: drained(prod_settings), 60, "every event settled")
        posted_s = wait_for(lambda: all_posted(prod_settings), 60, "every incident posted")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {status_counts(prod_settings)}\n{processes.logs()}") from exc
    finally:
        sender.close()

    sent = {d.key: d for d in deliveries}
    updates = sum(1 for c in slack.calls if c.path == "/api/chat.update" and c.status == 200)
    incidents = len(slack.messages("#incidents"))
    print(
        f"\nscale-out: {len(deliveries)} deliveries x2 in {sent_s:.1f} s "
        f"(answers {dict(sender.answers)}), events {status_counts(prod_settings)}; "
        f"{incidents} incidents for {len(mix.expected_keys)} keys, {slack.posts} posts, "
        f"{updates} updates, {slack.rate_limited} 429s; drained {drain_s:.1f} s and all "
        f"posted {drain_s + posted_s:.1f} s after the last send"
    )
    problems = check_events(prod_settings, sender, sent)
    problems += check_incidents(prod_settings, slack, mix.expected_keys)
    assert not problems, "\n".join(problems[:50])
    assert set(sender.answers) == {200}
    assert slack.rate_limited == 0
    assert slack.posts == incidents  # no thread replies: nothing changed state
