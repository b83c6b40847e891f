"""What the ingest benchmark sends: distinct, validly signed deliveries with a routed share.

Routed events run a workflow, in the proportions users send them: of every 20, 16 Stripe
`payment_intent.payment_failed` (three accounts, each with its own customer and decline
code, so they group into three incidents whose occurrence counts grow), 2 GitHub
`workflow_run.completed` failures on the repository's default branch (each on a repository
of its own: "CI broken" opens a new incident) and 2 Stripe `charge.dispute.created` (each
dispute opens a new incident). The rest are `payment_intent.succeeded`, which no workflow
handles (stored `ignored` at ingest). Routed events are spread evenly through the pool.

The payloads come from the tests' builders (tests/handlers/payloads.py, which shares the
demo's GitHub shapes), filled out to what providers send (as_sent.py: ~2 KB for a succeeded
payment, ~4 KB a failed one, ~20 KB a workflow run); they are serialised once into templates
whose ids are filled in per event, and signed with integrations/signing.py (Stripe's own SDK
helper, GitHub's HMAC). Ids derive from a run token and the event's index: the pool is signed
in chunks, each just before it is sent, and event i is the same event whichever chunk holds
it."""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import as_sent  # noqa: E402
import wrk  # noqa: E402

from integrations.signing import signature_headers  # noqa: E402
from tests.handlers import payloads as p  # noqa: E402

Payload = dict[str, Any]
# Filled in per event; those in NUMBERS replace a whole JSON value, quotes included.
NUMBERS = ("TS", "DUE", "RUNNO", "RUNID")
# Failed payments: one incident per account (handlers/billing.py count_failed_payment); each
# account's failures come from its own customer with its own decline, so a grouping by
# customer or by failure code would make the same three incidents.
FAILED_GROUPS = (
    ("acct_1BenchAtlas000001", "cus_QbenchAva00001", 2900, "insufficient_funds",
     "Your card has insufficient funds."),
    ("acct_1BenchBoreal00002", "cus_QbenchBen00002", 12900, "lost_card",
     "Your card has been declined."),
    ("acct_1BenchCirrus00003", "cus_QbenchCai00003", 4900, "do_not_honor",
     "Your card was declined."),
)  # fmt: skip
# A redelivery (--redelivered) repeats the delivery sent this many slots before it.
REDELIVERY_LAG = 500
# Routed kinds, in order, for each 20 routed events: 16 failed payments, 2 CI, 2 disputes.
USERS_CYCLE = tuple(
    "ci" if k in (7, 17) else "dispute" if k in (3, 13) else "failed" for k in range(20)
)
STRIPE_HEADERS = (
    ("Content-Type", "application/json; charset=utf-8"),
    ("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)"),
)
GITHUB_HEADERS = (
    ("Content-Type", "application/json"),
    ("User-Agent", "GitHub-Hookshot/5c3a1d2"),
    ("X-GitHub-Event", "workflow_run"),
    ("X-GitHub-Delivery", "{delivery}"),
    ("X-GitHub-Hook-ID", "481516234"),
)


@dataclass(frozen=True)
class Kind:
    provider: str
    path: str
    template: str  # the JSON body, str.format fields for what varies
    headers: tuple[tuple[str, str], ...]  # values may hold fields too


@dataclass(frozen=True)
class Mix:
    """`num` events of every `den` are routed, evenly spread; routed event r is of kind
    `cycle[r % len(cycle)]` (failed payments rotate over FAILED_GROUPS)."""

    num: int
    den: int
    cycle: tuple[str, ...] = USERS_CYCLE
    # Percent of slots that send again an event sent REDELIVERY_LAG slots before (same id and
    # body, signed anew, as Stripe's retries and GitHub's redeliveries are): answered
    # `duplicate`, stored nothing new.
    redelivered: int = 0

    @property
    def share_pct(self) -> float:
        return 100 * self.num / self.den

    @property
    def failed_only(self) -> bool:
        return self.cycle == ("failed",)

    @property
    def label(self) -> str:
        pct = f"{self.share_pct:g}%"
        label = f"{pct} failed payments only" if self.failed_only else pct
        return f"{label} +{self.redelivered}% redelivered" if self.redelivered else label

    def source(self, start: int, i: int) -> int:
        """The event slot `i` of a chunk beginning at `start` sends: itself, or a redelivery
        of one earlier in the same chunk (so that it was sent, whatever the rate)."""
        if not self._again(i):
            return i
        origin = i - REDELIVERY_LAG
        while self._again(origin):  # a slot that sends itself, not another's retry
            origin -= 1
        return origin if origin >= start else i

    def _again(self, i: int) -> bool:
        return (i * self.redelivered) % 100 < self.redelivered

    def redeliveries(self, start: int, sent: int) -> int:
        return sum(self.source(start, i) != i for i in range(start, start + sent))


def users(share_pct: int, redelivered: int = 0) -> Mix:
    return Mix(share_pct, 100, redelivered=redelivered)


def failed_only(every: int) -> Mix:
    """The earlier `--failed-every N`: every Nth event a failed payment, nothing else routed."""
    return Mix(1, every, ("failed",))


def template(payload: Payload, indent: int | None) -> str:
    text = json.dumps(payload, indent=indent).replace("{", "{{").replace("}", "}}")
    for key in NUMBERS:
        text = text.replace(f'"@{key}@"', "{" + key.lower() + "}")
    for key in (*NUMBERS, "ID", "ACCT", "PI", "CH", "ORDER", "REQ", "DP", "NAME", "SHA", "STARTED"):
        text = text.replace(f"@{key}@", "{" + key.lower() + "}")
    if left := re.search(r"@[A-Z]+@", text):
        raise ValueError(f"placeholder {left.group(0)} has no field")
    return text


def stripe(kind: str, obj: Payload, account: str | None = None) -> Kind:
    event = p.stripe_event(kind, obj, account=account, event_id="@ID@")
    event["created"] = "@TS@"
    event["request"] = {"id": "@REQ@", "idempotency_key": "@ORDER@"}
    # Stripe sends its events pretty-printed with two-space indents (as `hub demo` does).
    return Kind("stripe", "/webhooks/stripe", template(event, 2), STRIPE_HEADERS)


def succeeded() -> Kind:
    """The commonest Stripe webhook, which no workflow handles: the hub stores it `ignored` at
    once (hub/events/routed_kinds.py). `--hub-env HUB_ROUTES_REFRESH_S=0` sends it through
    the queue and a worker as well, the way a routed kind goes."""
    intent: Payload = {
        "id": "@PI@",
        "object": "payment_intent",
        "amount": 4999,
        "amount_received": 4999,
        "capture_method": "automatic",
        "created": "@TS@",
        "currency": "usd",
        "customer": "cus_QbenchCustomer01",
        "description": "Subscription renewal",
        "latest_charge": "@CH@",
        "payment_method": "pm_1PbenchCard0341",
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "livemode": False,
        "metadata": {"order_id": "@ORDER@"},
        "payment_method_types": ["card"],
        "status": "succeeded",
    }
    return stripe("payment_intent.succeeded", as_sent.payment_intent(intent), account="@ACCT@")


def failed(account: str, customer: str, amount: int, decline: str, message: str) -> Kind:
    intent = p.payment_intent_failed("@PI@", amount, "usd", customer, decline, message)
    intent["created"] = "@TS@"
    intent["last_payment_error"]["charge"] = "@CH@"
    intent["latest_charge"] = "@CH@"
    return stripe("payment_intent.payment_failed", as_sent.payment_intent(intent), account=account)


def dispute() -> Kind:
    obj = p.dispute(dispute_id="@DP@", amount=12900, charge="@CH@")
    obj |= {"created": "@TS@", "payment_intent": "@PI@"}
    obj["evidence_details"]["due_by"] = "@DUE@"
    return stripe("charge.dispute.created", as_sent.dispute(obj))


def ci_failure() -> Kind:
    """CI red on `main`, on a repository of its own: a new "CI broken" incident."""
    payload = p.workflow_run("failure", "main", repo="bench-org/@NAME@", sender="mona")
    run = payload["workflow_run"]
    run |= {"id": "@RUNID@", "run_number": "@RUNNO@", "head_sha": "@SHA@"}
    run |= {
        "run_started_at": "@STARTED@",
        "html_url": "https://github.com/bench-org/@NAME@/actions/runs/@RUNID@",
    }
    run["head_commit"] |= {"id": "@SHA@", "timestamp": "@STARTED@"}
    # GitHub sends its payloads compact, without whitespace.
    return Kind(
        "github", "/webhooks/github", template(as_sent.workflow_run(payload), None), GITHUB_HEADERS
    )


def kinds() -> dict[str, list[Kind]]:
    return {
        "unrouted": [succeeded()],
        "failed": [failed(*g) for g in FAILED_GROUPS],
        "ci": [ci_failure()],
        "dispute": [dispute()],
    }


def write_events(
    path: Path, start: int, count: int, secrets_by_provider: dict[str, str], mix: Mix, run: str
) -> None:
    """Sign events `start` to `start + count` of run `run` now, into `path` (Stripe refuses
    timestamps older than 300 s on arrival). Event i is the same event in every call."""
    by_name = kinds()
    now = int(time.time())
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 240))
    with path.open("wb") as out:
        for slot in range(start, start + count):
            i = mix.source(start, slot)
            if (i * mix.num) % mix.den < mix.num:
                r = (i * mix.num) // mix.den  # how many routed events came before
                variants = by_name[mix.cycle[r % len(mix.cycle)]]
                kind = variants[r % len(variants)]
            else:
                kind = by_name["unrouted"][0]
            n = f"{run}{i:010d}"
            fields = {
                "id": f"evt_1B{n}", "acct": f"acct_1Bench{i % 8:010d}", "pi": f"pi_3B{n}",
                "ch": f"ch_3B{n}", "order": f"ord-{run}-{i:010d}", "req": f"req_{n}",
                "dp": f"dp_1B{n}", "name": f"svc-{run}-{i}", "sha": f"{run}{i:032x}",
                "runno": 1 + i % 100_000, "runid": 10**10 + i, "ts": now, "due": now + 9 * 86_400,
                "started": started, "delivery": f"{run}-0000-4000-8000-{i:012d}",
            }  # fmt: skip
            body = kind.template.format(**fields).encode()
            headers = [(name, value.format(**fields)) for name, value in kind.headers]
            signature = signature_headers(
                kind.provider, body, secrets_by_provider[kind.provider], now
            )
            headers += signature.items()
            wrk.write_record(out, kind.path, headers, body)


def run_token() -> str:
    return secrets.token_hex(4)
