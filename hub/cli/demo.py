"""`hub demo`: sign and send a realistic sequence of webhooks to a running hub, so a new user
sees incidents open, grow, resolve and be acknowledged without any third-party account.

It runs next to the hub: it signs with the hub's own secrets (the first of each
`HUB_*_SECRETS`, from the environment or `.env`) and reads what it caused from the hub's
database (`HUB_DATABASE_URL`), which is also how it learns the incident id a button carries."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy import Executable, Row, Table, make_url, select
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from hub.cli.demo_payloads import (
    Request,
    dispute_created,
    payment_failed,
    press_acknowledge,
    signed,
    stripe_id,
    workflow_run,
)
from hub.config import Settings
from hub.events.models import ACTIVE, Event, Status
from hub.incidents.models import Incident, IncidentEvent
from hub.runtime.db import is_sqlite, make_engine
from integrations.slack_messages import BUTTON_ACTIONS

ENV_VARS = {
    "stripe": "HUB_STRIPE_WEBHOOK_SECRETS",
    "github": "HUB_GITHUB_WEBHOOK_SECRETS",
    "slack": "HUB_SLACK_SIGNING_SECRETS",
}
STEPS = {
    "stripe": "a dispute and failed payments",
    "github": "CI red then green",
    "slack": "the Acknowledge button",
}
DEFAULT_URL = "http://127.0.0.1:8000"
FAILED_PAYMENTS = 3
WAIT_S = 15.0  # for the hub's workers to turn an event into an incident
ACK_ACTION = next(action for action, verb in BUTTON_ACTIONS.items() if verb == "acknowledge")

events: Table = Event.__table__  # type: ignore[attr-defined]
incidents: Table = Incident.__table__  # type: ignore[attr-defined]
incident_events: Table = IncidentEvent.__table__  # type: ignore[attr-defined]


class DemoError(Exception):
    """Stops the demo with a message for the user (no traceback) and exit status 1."""


def command(args: argparse.Namespace) -> None:
    """`hub demo` (its options are declared with the other commands, in hub/cli/main.py)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    raise SystemExit(run(args.url or os.environ.get("HUB_URL") or DEFAULT_URL, args.pause))


def run(url: str, pause: float = 1.5, settings: Settings | None = None) -> int:
    """The whole demo; returns the exit status (0 done, 1 failed, 2 nothing configured)."""
    try:
        settings = settings if settings is not None else Settings()
    except ValidationError as exc:
        print(f"hub demo: the HUB_* settings are invalid:\n{exc}", file=sys.stderr)
        return 2
    keys = {provider: found[0] for provider, found in settings.webhook_secrets().items() if found}
    if not keys:
        names = ", ".join(ENV_VARS.values())
        print(f"hub demo: no webhook secret is configured, so there is nothing to sign with.\n"
              f"Set at least one of {names} (in the environment or in .env) to the value the "
              "hub runs with, then run `hub demo` again.", file=sys.stderr)  # fmt: skip
        return 2
    print(f"hub demo: sending to {url}")
    for provider, env in ENV_VARS.items():
        if provider not in keys:
            print(f"  {provider}: skipped ({STEPS[provider]}); set {env} to include it")
    try:
        with httpx.Client(base_url=url.rstrip("/"), timeout=10.0) as http:
            _check_hub(http)
            store = Store(settings.database_url)
            try:
                Demo(http, store, keys, settings, pause).run()
            finally:
                store.close()
    except DemoError as exc:
        print(f"hub demo: {exc}", file=sys.stderr)
        return 1
    return 0


def _check_hub(http: httpx.Client) -> None:
    if http.base_url.scheme not in ("http", "https"):
        raise DemoError(f"the hub's URL must start with http:// or https://, not {http.base_url}")
    try:
        answer = http.get("/healthz")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise DemoError(
            f"cannot reach the hub at {http.base_url} ({type(exc).__name__}). "
            "Start it with `make run` (or `hub serve`), or point --url / HUB_URL at it."
        ) from None
    if answer.status_code != 200:
        raise DemoError(f"{answer.url} answered {answer.status_code}: is that the hub?")


class Store:
    """The hub's database, read only: what became of the events the demo sent."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise DemoError(f"HUB_DATABASE_URL {url!r} is not a database URL") from None
        self.shown = parsed.render_as_string(hide_password=True)
        path = parsed.database
        if is_sqlite(url) and path and path != ":memory:" and not Path(path).exists():
            raise DemoError(
                f"the hub's database {path} does not exist here. Run the demo from the "
                "directory the hub runs in, or set HUB_DATABASE_URL to the hub's database."
            )
        self._engine = make_engine(url, pool_size=1)
        self.read(select(events.c.id).limit(1))  # reachable, and migrated

    def close(self) -> None:
        self._engine.dispose()

    def read(self, query: Executable) -> list[Row[Any]]:
        try:
            with self._engine.connect() as conn:
                return list(conn.execute(query))
        except SQLAlchemyError as exc:
            cause = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
            raise DemoError(
                f"cannot read the hub's database {self.shown}: {cause} "
                "(has `hub migrate` run on it?)"
            ) from None

    def event_states(self, ids: Sequence[str]) -> list[Row[Any]]:
        query = select(events.c.id, events.c.type, events.c.status, events.c.last_error)
        return self.read(query.where(events.c.id.in_(ids)))

    def incident_of(self, event_id: str) -> Row[Any] | None:
        fed = incident_events.c.incident_id == incidents.c.id
        query = select(incidents).join(incident_events, fed)
        found = self.read(query.where(incident_events.c.event_id == event_id))
        return found[0] if found else None

    def incidents_of(self, ids: Sequence[str]) -> list[Row[Any]]:
        fed = select(incident_events.c.incident_id).where(incident_events.c.event_id.in_(ids))
        query = select(incidents).where(incidents.c.id.in_(fed))
        return self.read(query.order_by(incidents.c.first_seen, incidents.c.id))


class Demo:
    def __init__(self, http: httpx.Client, store: Store, keys: dict[str, str],
                 settings: Settings, pause: float) -> None:  # fmt: skip
        self._http, self._store, self._keys = http, store, keys
        self._settings, self._pause = settings, pause
        self.sent: list[str] = []  # the hub's event ids, in order
        self._dispute_event: str | None = None
        with_stripe, with_github = "stripe" in keys, "github" in keys
        self._total = (1 + FAILED_PAYMENTS + ("slack" in keys)) * with_stripe + 2 * with_github

    def run(self) -> None:
        for provider, step in (("stripe", self._stripe), ("github", self._github),
                               ("slack", self._slack)):  # fmt: skip
            if provider in self._keys:
                step()
        self._finish()

    def _stripe(self) -> None:
        self._dispute_event = self._send(dispute_created())
        account = stripe_id("acct")  # a fresh account each run: a fresh incident, counted anew
        for n in range(FAILED_PAYMENTS):
            self._send(payment_failed(account, n))

    def _github(self) -> None:
        # GitHub numbers a workflow's runs in order, and the hub orders CI by that number:
        # each demo's runs must come after the last demo's, as real ones would, even two
        # demos within a second (milliseconds since 2026, so the number stays readable).
        number = time.time_ns() // 1_000_000 - 1_767_225_600_000
        failed = self._send(workflow_run("failure", number, "Bump the checkout timeout to 30 s"))
        # Workers take events in parallel: the fix must not be applied before the failure.
        self._wait_incident(failed, "the CI incident")
        self._send(workflow_run("success", number + 1, 'Revert "Bump the checkout timeout"'))

    def _slack(self) -> None:
        if self._dispute_event is None:
            print(
                "  slack: skipped (the button acknowledges the dispute, which needs "
                f"{ENV_VARS['stripe']})"
            )
            return
        incident = self._wait_incident(self._dispute_event, "the dispute incident")
        self._send(
            press_acknowledge(incident.id, ACK_ACTION, incident.slack_channel, incident.slack_ts)
        )

    def _send(self, request: Request) -> str:
        if self.sent:
            time.sleep(max(self._pause, 0.0))
        step = f"[{len(self.sent) + 1}/{self._total}]"
        label = f"{step} {request.provider} {request.kind}: {request.about}"
        headers = signed(request, self._keys[request.provider])
        try:
            answer = self._http.post(request.path, content=request.body, headers=headers)
        except httpx.HTTPError as exc:
            raise DemoError(f"lost the hub while sending {request.kind}: {exc!r}") from None
        if not answer.is_success:
            print(f"{label} → {answer.status_code}")
            raise DemoError(_refusal(request, answer))
        body = _json(answer)
        event_id, duplicate = body.get("event_id"), body.get("duplicate")
        if not isinstance(event_id, str) or not isinstance(duplicate, bool):
            raise DemoError(f"unexpected answer to {request.kind}: {answer.text[:200]}")
        flag = "DUPLICATE" if duplicate else "new"
        print(f"{label} → {answer.status_code} {event_id} ({flag})")
        self.sent.append(event_id)
        return event_id

    def _wait_incident(self, event_id: str, what: str) -> Row[Any]:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if (incident := self._store.incident_of(event_id)) is not None:
                return incident
            self._fail_on_failed([event_id])
            time.sleep(0.1)
        raise DemoError(
            f"the hub accepted the event, but {what} did not appear in {self._store.shown} "
            f"within {WAIT_S:.0f} s. Are its workers running (`hub worker` when HUB_REDIS_URL "
            "is set), and is that the hub's database (run the demo where the hub runs, or set "
            f"HUB_DATABASE_URL)? The event is /admin/events/{event_id}."
        )

    def _finish(self) -> None:
        ids = self.sent
        deadline = time.monotonic() + WAIT_S
        busy = ids
        while busy and time.monotonic() < deadline:
            time.sleep(0.05)
            busy = [row.id for row in self._store.event_states(ids) if row.status in ACTIVE]
        self._summary(self._store.incidents_of(ids))
        self._fail_on_failed(ids)
        if busy:
            raise DemoError(
                f"{len(busy)} event(s) still not processed after {WAIT_S:.0f} s, "
                f"e.g. /admin/events/{busy[0]}: are the hub's workers running?"
            )

    def _fail_on_failed(self, ids: Sequence[str]) -> None:
        for row in self._store.event_states(ids):
            if row.status == Status.FAILED:
                error = (row.last_error or "no error recorded").splitlines()[0]
                raise DemoError(f"the hub failed to process {row.type} {row.id}: {error}")

    def _summary(self, rows: Sequence[Row[Any]]) -> None:
        print(f"\nIncidents this run caused, from {self._store.shown}:")
        print(f"  {'SEVERITY':<9}{'STATUS':<14}{'OCCURRENCES':>11}  TITLE")
        for row in rows:
            print(f"  {row.severity:<9}{row.status:<14}{row.occurrences:>11}  {row.title}")
        posted = sorted({row.slack_channel for row in rows if row.slack_ts})
        channel = self._settings.slack_incident_channel
        if posted:
            print(f"Slack: the messages are in {', '.join(posted)}, with their buttons.")
        elif self._settings.slack_bot_token is None:
            print("Slack: HUB_SLACK_BOT_TOKEN is unset, so the hub wrote the messages to its "
                  f"log: look for its `[slack {channel}]`, `[slack update …]` and "
                  "`[slack thread …]` lines.")  # fmt: skip
        else:
            print(f"Slack: the messages are on their way to {channel}.")


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refusal(request: Request, answer: httpx.Response) -> str:
    reason = _json(answer).get("reason") or answer.text[:200] or answer.reason_phrase
    env = ENV_VARS[request.provider]
    hints = {
        401: f"the demo signs with the first secret in {env}; the hub must run with it too",
        404: f"the hub has no {request.provider} endpoint: start it with {env} set",
        503: "the hub cannot store events right now; try again shortly",
    }
    message = f"the hub answered {answer.status_code} to {request.kind}: {reason}"
    hint = hints.get(answer.status_code)
    return f"{message}\n  hint: {hint}" if hint else message
