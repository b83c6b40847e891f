"""Logs that follow an event: ids bound in context on every record, as JSON or text; a request
id on every admin answer; and one dispute followed from its webhook to the Slack post by its
id in the logs (embedded mode, a local server answering like Slack's Web API)."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi import APIRouter
from pydantic import ValidationError
from sqlalchemy import select
from starlette.testclient import TestClient

from hub.bootstrap import create_app
from hub.config import Settings
from hub.incidents.models import Incident
from hub.runtime.db import make_engine
from hub.runtime.logs import (
    HANDLER_NAME,
    bind,
    bound,
    configure_logging,
    handler_for,
    resolve_format,
)
from hub.web.app import HubAPI
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.fakes.slack import SlackServer
from tests.handlers import payloads as p
from tests.signing import STRIPE_SECRET, stripe_request
from tests.test_incident_flow import wait_for

Records = Callable[[], list[dict[str, Any]]]
HEX_ID = re.compile(r"[0-9a-f]{32}")


def plain(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own writing JSON lines to a buffer (the root logger is left alone)."""
    stream = io.StringIO()
    handler = handler_for(plain(log_format="json"), stream)
    log = logging.getLogger(f"tests.logs.{uuid.uuid4().hex[:8]}")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log, stream
    log.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def json_logs(caplog: pytest.LogCaptureFixture) -> Iterator[Records]:
    """Everything logged anywhere in this process (threads included), as the hub's JSON
    lines: the handler `hub serve` installs, on the root logger, at INFO."""
    caplog.set_level(logging.INFO)
    stream = io.StringIO()
    handler = handler_for(plain(log_format="json"), stream)
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: lines(stream)
    root.removeHandler(handler)


# --- the formats ----------------------------------------------------------------------------


def test_a_json_line_carries_the_bound_ids_and_only_inside_the_bind(logger):
    log, stream = logger
    with bind(event_id="evt_1", delivery_id=None):
        log.info("stored %s", "it")
    log.info("after")
    inside, after = lines(stream)
    assert inside["message"] == "stored it"
    assert inside["level"] == "INFO"
    assert inside["logger"] == log.name
    assert inside["event_id"] == "evt_1"
    assert "delivery_id" not in inside  # None binds nothing
    assert inside["time"].endswith("Z")
    assert datetime.fromisoformat(inside["time"]).utcoffset().total_seconds() == 0
    assert set(after) == {"time", "level", "logger", "message"}


def test_nested_binds_override_and_then_restore(logger):
    log, stream = logger
    with bind(event_id="evt_outer"):
        with bind(event_id="evt_inner", incident_id="inc_1"):
            log.info("inner")
            assert bound() == {"event_id": "evt_inner", "incident_id": "inc_1"}
        log.info("outer again")
    assert bound() == {}
    inner, outer = lines(stream)
    assert (inner["event_id"], inner["incident_id"]) == ("evt_inner", "inc_1")
    assert outer["event_id"] == "evt_outer"
    assert "incident_id" not in outer


def test_an_exception_is_one_string_field_on_the_same_line(logger):
    log, stream = logger
    with bind(incident_id="inc_2"):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("effect failed")
    (record,) = lines(stream)
    assert record["level"] == "ERROR"
    assert record["incident_id"] == "inc_2"
    assert record["exc_info"].startswith("Traceback (most recent call last)")
    assert "RuntimeError: boom" in record["exc_info"]


def test_an_id_passed_as_extra_is_written_and_wins_over_a_bound_one(logger):
    log, stream = logger
    with bind(event_id="evt_bound"):
        log.info("replayed", extra={"event_id": "evt_extra", "replay_id": "rpl_1"})
    (record,) = lines(stream)
    assert (record["event_id"], record["replay_id"]) == ("evt_extra", "rpl_1")


def test_the_text_format_appends_the_ids_before_any_traceback():
    stream = io.StringIO()
    log = logging.getLogger("tests.logs.text")
    handler = handler_for(plain(log_format="text"), stream)
    log.addHandler(handler)
    log.propagate = False
    try:
        with bind(event_id="evt_9", incident_id="inc_9"):
            log.warning("workflow failed")
            try:
                raise ValueError("bad")
            except ValueError:
                log.exception("again")
        log.warning("unbound")
    finally:
        log.removeHandler(handler)
    first, second, *trace, last = stream.getvalue().splitlines()
    assert first.endswith(
        "WARNING tests.logs.text workflow failed event_id=evt_9 incident_id=inc_9"
    )
    assert second.endswith("again event_id=evt_9 incident_id=inc_9")
    assert trace[0].startswith("Traceback") and trace[-1] == "ValueError: bad"
    assert last.endswith("unbound")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_text_on_a_terminal_and_json_elsewhere():
    assert resolve_format("auto", Terminal()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("json", Terminal()) == "json"
    assert resolve_format("text", io.StringIO()) == "text"
    assert plain().log_format == "auto"


def test_the_settings_name_the_variable_when_a_value_is_wrong(monkeypatch):
    monkeypatch.setenv("HUB_LOG_FORMAT", "JSON")
    monkeypatch.setenv("HUB_LOG_LEVEL", "debug")
    assert (plain().log_format, plain().log_level) == ("json", "DEBUG")
    monkeypatch.setenv("HUB_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="HUB_LOG_FORMAT must be one of auto, json, text"):
        plain()
    monkeypatch.delenv("HUB_LOG_FORMAT")
    monkeypatch.setenv("HUB_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError, match="HUB_LOG_LEVEL must be one of"):
        plain()


def test_configure_logging_installs_one_handler_and_leaves_a_configured_root_alone():
    root = logging.getLogger()
    # Under pytest the root logger already has the runner's handlers: like basicConfig,
    # nothing changes.
    assert root.handlers
    before = (list(root.handlers), root.level)
    assert configure_logging(plain(log_format="json")) is False
    assert (root.handlers, root.level) == before
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        assert configure_logging(plain(log_format="json", log_level="DEBUG")) is True
        assert configure_logging(plain(log_format="text"), level=logging.WARNING) is True
        assert [h.get_name() for h in root.handlers] == [HANDLER_NAME]  # replaced, not added
        assert root.level == logging.WARNING
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        root.handlers.extend(saved)
        root.setLevel(before[1])


# --- the admin request id -------------------------------------------------------------------


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def admin(client: TestClient, path: str, request_id: str | None = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    return client.get(path, headers=headers, **kw)


def test_every_admin_answer_has_a_request_id_and_a_sane_one_is_kept(client):
    first, second = admin(client, "/admin/events"), admin(client, "/admin/events")
    assert first.status_code == 200
    assert HEX_ID.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    given = "7f0c2a1e-trace:42"
    assert admin(client, "/admin/events", given).headers["x-request-id"] == given
    assert admin(client, "/admin/stats", "x" * 128).headers["x-request-id"] == "x" * 128
    missing = admin(client, "/admin/events/evt_01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert missing.status_code == 404 and HEX_ID.fullmatch(missing.headers["x-request-id"])
    invalid = admin(client, "/admin/events", params={"limit": "many"})
    assert invalid.status_code == 422 and HEX_ID.fullmatch(invalid.headers["x-request-id"])


@pytest.mark.parametrize("insane", ["x" * 129, "two words", "ids;drop", 'say"hi', "a,b"])
def test_an_insane_request_id_is_replaced(client, insane):
    answer = client.get("/admin/events", headers={"X-Request-ID": insane})
    assert HEX_ID.fullmatch(answer.headers["x-request-id"])


def test_a_refused_request_has_the_id_in_its_answer_and_its_log_line(client, json_logs):
    answer = client.get("/admin/events", headers={"X-Request-ID": "req-401"})
    assert answer.status_code == 401
    assert answer.headers["x-request-id"] == "req-401"
    refused = [r for r in json_logs() if r["message"].startswith("admin request refused")]
    assert [r.get("request_id") for r in refused] == ["req-401"]


def test_a_500_has_the_id_too_and_the_failure_is_logged_with_it(json_logs):
    app = HubAPI()
    router = APIRouter()

    @router.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    app.include_router(router)
    with TestClient(app, raise_server_exceptions=False) as c:
        answer = c.get("/boom", headers={"X-Request-ID": "req-500"})
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "req-500"
    failed = [r for r in json_logs() if r["message"] == "GET /boom failed: RuntimeError"]
    assert [r.get("request_id") for r in failed] == ["req-500"]


def test_the_webhook_path_gets_no_request_id(client):
    answer = client.post("/webhooks/stripe", content=b"{}", headers={"X-Request-ID": "req-1"})
    assert answer.status_code in (400, 401, 415)
    assert "x-request-id" not in answer.headers


# --- one event, followed by its id ----------------------------------------------------------


def test_one_dispute_is_followed_from_its_webhook_to_the_slack_post_by_its_id(
    sqlite_url, slack: SlackServer, json_logs
):
    settings = make_settings(sqlite_url, slack_bot_token=slack.token, slack_api_url=slack.api_url)
    event = p.stripe_event("charge.dispute.created", p.dispute(), event_id="evt_follow_me")
    with TestClient(create_app(settings)) as client:
        body, headers = stripe_request(event)
        answer = client.post("/webhooks/stripe", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        event_id = answer.json()["event_id"]
        wait_for(lambda: slack.messages("#incidents"), what="the incident's Slack message")
        posted = wait_for(
            lambda: [
                r for r in json_logs() if r.get("effect") == "slack.post" and "done" in r["message"]
            ],
            what="the post's log line",
        )
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        (incident_id,) = conn.execute(select(Incident.id)).scalars().all()
    engine.dispose()

    story = [r for r in json_logs() if r.get("event_id") == event_id]
    # The dispute's workflow opened the incident: one line names the event, the incident
    # and the workflow...
    (opened,) = [r for r in story if r["message"].startswith(f"incident {incident_id}: opened")]
    assert opened["incident_id"] == incident_id
    assert opened["workflow"].startswith("handlers.billing.")
    # ...which the router does not say again ("workflow ... ran for" is for other outcomes).
    assert not [r for r in story if "ran for" in r["message"]]
    # ...and the Slack post names the incident and the event that caused it.
    (post,) = posted
    assert (post["incident_id"], post["event_id"]) == (incident_id, event_id)
    assert post in story
    # Found by the incident id as well, the story starts where it opened.
    assert next(r for r in json_logs() if r.get("incident_id") == incident_id) == opened
    # No secret reaches the logs.
    text = json.dumps(json_logs())
    for secret in (slack.token, STRIPE_SECRET, ADMIN_TOKEN):
        assert secret not in text
