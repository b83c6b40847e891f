"""`hub demo` against a real hub: the embedded app served by uvicorn on a free port (SQLite,
in-process workers), driven through the CLI exactly as a user runs it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from hub.bootstrap import create_app
from hub.cli import main as cli
from hub.cli.demo import ENV_VARS, FAILED_PAYMENTS
from hub.cli.demo_payloads import SLACK_USER
from hub.config import Settings
from hub.events.models import Event
from hub.incidents.models import Incident, TimelineEntry
from tests.conftest import settings_env
from tests.serving import uvicorn_thread
from tests.test_incident_flow import rows

STEPS = 1 + FAILED_PAYMENTS + 2 + 1  # dispute, payments, CI red and green, the button


@pytest.fixture
def hub_url(settings: Settings) -> Iterator[str]:
    with uvicorn_thread(create_app(settings)) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> pytest.MonkeyPatch:
    """No HUB_* from the developer's shell, and no .env: a directory of its own."""
    monkeypatch.chdir(tmp_path)
    for name in [*ENV_VARS.values(), "HUB_DATABASE_URL", "HUB_URL", "HUB_SLACK_BOT_TOKEN"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def same_env_as_hub(demo_env: pytest.MonkeyPatch, settings: Settings) -> None:
    for name, value in settings_env(settings).items():
        if name.startswith("HUB_"):
            demo_env.setenv(name, value)


def demo(*argv: str) -> int:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["demo", *argv])
    code = exit_.value.code
    assert isinstance(code, int)
    return code


def by_kind(incidents: list[Any]) -> dict[str, list[Any]]:
    kinds: dict[str, list[Any]] = {"dispute": [], "failed-payments": [], "ci": []}
    for incident in incidents:
        kinds[incident.key.split(":")[1]].append(incident)
    return kinds


@pytest.mark.usefixtures("same_env_as_hub")
def test_the_demo_opens_counts_resolves_and_acknowledges(hub_url, settings, capsys):
    assert demo("--url", hub_url, "--pause", "0") == 0
    out = capsys.readouterr().out
    assert out.count("→ 200 evt_") == STEPS  # every request answered 2xx
    assert "DUPLICATE" not in out
    assert "HUB_SLACK_BOT_TOKEN is unset" in out

    kinds = by_kind(rows(settings, Incident))
    (dispute,) = kinds["dispute"]
    assert dispute.status == "acknowledged"
    assert dispute.acknowledged_by == f"<@{SLACK_USER}>"
    timeline = [
        (t.actor, t.action) for t in rows(settings, TimelineEntry) if t.incident_id == dispute.id
    ]
    assert (f"<@{SLACK_USER}>", "acknowledged") in timeline
    (payments,) = kinds["failed-payments"]
    assert payments.occurrences == FAILED_PAYMENTS
    assert payments.status == "open"
    (ci,) = kinds["ci"]
    assert ci.status == "resolved"
    for incident in (dispute, payments, ci):  # the summary table shows each
        assert f"{incident.status:<14}{incident.occurrences:>11}  {incident.title}" in out

    stored = rows(settings, Event)
    assert len(stored) == STEPS
    assert {e.status for e in stored} == {"processed"}

    # Again: fresh ids make new events and new incidents, not duplicates of the first run.
    assert demo("--url", hub_url, "--pause", "0") == 0
    out = capsys.readouterr().out
    assert out.count("→ 200 evt_") == STEPS
    assert "DUPLICATE" not in out
    stored = rows(settings, Event)
    assert len(stored) == 2 * STEPS
    assert len({(e.provider, e.delivery_id) for e in stored}) == 2 * STEPS
    kinds = by_kind(rows(settings, Incident))
    assert [len(kinds[k]) for k in ("dispute", "failed-payments", "ci")] == [2, 2, 2]
    assert sorted(i.status for i in kinds["dispute"]) == ["acknowledged", "acknowledged"]
    assert [i.occurrences for i in kinds["failed-payments"]] == [FAILED_PAYMENTS] * 2
    assert [i.status for i in kinds["ci"]] == ["resolved", "resolved"]


@pytest.mark.usefixtures("demo_env")
def test_without_any_secret_it_says_what_to_set_and_exits_2(capsys):
    assert demo("--url", "http://127.0.0.1:9") == 2
    err = capsys.readouterr().err
    assert "no webhook secret is configured" in err
    for name in ENV_VARS.values():
        assert name in err
    assert "Traceback" not in err


def test_a_hub_that_is_not_running_exits_1(demo_env, capsys):
    demo_env.setenv("HUB_GITHUB_WEBHOOK_SECRETS", "demo-github-secret")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert demo("--url", f"http://127.0.0.1:{port}", "--pause", "0") == 1
    captured = capsys.readouterr()
    assert f"cannot reach the hub at http://127.0.0.1:{port}" in captured.err
    assert "Traceback" not in captured.err
    # The providers without a secret are named with the variable that would include them.
    assert "stripe: skipped" in captured.out
    assert "HUB_STRIPE_WEBHOOK_SECRETS" in captured.out
    assert "github: skipped" not in captured.out
