"""`hub doctor` against the local fakes: one line per check, exit code 1 on any fail."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.cli.doctor import run_checks
from hub.config import Settings
from tests.conftest import ADMIN_TOKEN, make_settings, settings_env
from tests.fakes.github import GitHubServer
from tests.fakes.slack import SlackServer
from tests.fakes.stripe import StripeServer


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with GitHubServer() as server:
        yield server


@pytest.fixture
def stripe_api() -> Iterator[StripeServer]:
    with StripeServer() as server:
        yield server


@pytest.fixture
def configured(
    settings: Settings, slack: SlackServer, github: GitHubServer, stripe_api: StripeServer
) -> Settings:
    return make_settings(
        settings.database_url,
        slack_bot_token=slack.token,
        slack_api_url=slack.api_url,
        github_token=github.token,
        github_api_url=github.url,
        github_incident_repo="acme/api",
        stripe_api_key=stripe_api.api_key,
        stripe_api_base=stripe_api.api_base,
    )


def rebuilt(settings: Settings, **changes: object) -> Settings:
    """`settings` with changes, validated (model_copy would keep a plain str as a secret)."""
    return Settings(_env_file=None, **(settings.model_dump() | changes))  # type: ignore[call-arg]


def doctor(settings: Settings, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "doctor", *args],
        check=False,
        cwd=cwd,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


def lines(settings: Settings) -> dict[str, str]:
    return {check.what: check.line() for check in run_checks(settings)}


def test_everything_configured_and_working_is_ok(configured: Settings, tmp_path: Path) -> None:
    done = doctor(configured, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout.splitlines()
    assert [line.split()[0] for line in out] == ["ok"] * len(out)
    text = "\n".join(out)
    assert "ok    broker: embedded (no HUB_REDIS_URL: hub serve runs the workers)" in out
    assert "ok    providers: /webhooks/stripe, /webhooks/github, /webhooks/slack mounted" in out
    assert "ok    admin API: 1 token(s) in HUB_ADMIN_TOKENS" in out
    assert "ok    slack token: valid: hub in Fake Workspace (auth.test)" in out
    assert "ok    slack channel: the bot is a member of #incidents" in out
    assert "ok    github: the token can open issues in acme/api" in out
    assert "ok    stripe: the key is accepted and may read disputes" in out
    assert re.search(r"^ok    clock: within \d s of Slack's$", text, re.M)
    database = next(line for line in out if line.startswith("ok    database: "))
    assert "migrated to" in database and f"{tmp_path}/hub.db" in database
    for secret in (ADMIN_TOKEN, "xoxb-test-token", "ghp_test_token", "sk_test_hub_fake"):
        assert secret not in done.stdout + done.stderr


def test_a_bad_slack_token_fails(configured: Settings, tmp_path: Path) -> None:
    wrong = rebuilt(configured, slack_bot_token="xoxb-wrong-token")
    done = doctor(wrong, tmp_path)
    assert done.returncode == 1
    assert "fail  slack token: auth.test: invalid_auth (check HUB_SLACK_BOT_TOKEN)" in (
        done.stdout.splitlines()
    )
    assert "xoxb-wrong-token" not in done.stdout + done.stderr


def test_json_is_the_list_of_checks(configured: Settings, tmp_path: Path) -> None:
    done = doctor(configured, tmp_path, "--json")
    assert done.returncode == 0
    checks = json.loads(done.stdout)
    assert {
        "status": "ok",
        "what": "github",
        "detail": "the token can open issues in acme/api",
    } in (checks)
    assert {c["status"] for c in checks} == {"ok"}


def test_an_unmigrated_database_fails(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hub.db"
    done = doctor(make_settings(url), tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        f"fail  database: no database at {tmp_path}/hub.db (HUB_DATABASE_URL={url}); "
        "run: hub migrate"
    )
    assert not (tmp_path / "hub.db").exists()


def test_github_and_stripe_refusals_are_fail_lines(configured: Settings) -> None:
    wrong = rebuilt(
        configured, github_incident_repo="acme/nope", stripe_api_key="sk_test_wrong_key_1234"
    )
    found = lines(wrong)
    assert found["github"] == "fail  github: GitHub answered 404: Not Found"
    assert found["stripe"] == "fail  stripe: Stripe: key check answered 401"
    assert "sk_test_wrong_key_1234" not in "\n".join(found.values())


def test_a_clock_off_by_minutes_is_a_warning(configured: Settings) -> None:
    skewed = run_checks(configured, now=lambda: time.time() + 600)
    (clock,) = [c.line() for c in skewed if c.what == "clock"]
    assert re.fullmatch(
        r"warn  clock: this server's clock is 60\d s ahead of Slack's: Stripe and Slack refuse "
        r"signatures more than 300 s off; sync it \(NTP\)",
        clock,
    ), clock


def test_unconfigured_integrations_and_no_tokens(sqlite_url: str) -> None:
    bare = make_settings(sqlite_url, admin_tokens=[], stripe_webhook_secrets=[])
    found = lines(bare)
    assert found["providers"] == (
        "ok    providers: /webhooks/github, /webhooks/slack mounted; "
        "not stripe (no HUB_STRIPE_WEBHOOK_SECRETS)"
    )
    assert found["admin API"] == (
        "warn  admin API: HUB_ADMIN_TOKENS is not set (nor a token made with `hub tokens "
        "create`): the admin API refuses every request"
    )
    assert found["slack"] == "ok    slack: no HUB_SLACK_BOT_TOKEN: incident messages go to the log"
    assert found["clock"] == (
        "ok    clock: not compared (no Slack or GitHub answer to compare with)"
    )


def test_an_unreachable_redis_fails(sqlite_url: str) -> None:
    found = lines(make_settings(sqlite_url, redis_url="redis://:pw-not-shown@127.0.0.1:1/0"))
    assert found["broker"] == (
        "fail  broker: Redis at redis://:***@127.0.0.1:1/0 does not answer PING: ConnectionError"
    )


@pytest.mark.services
def test_a_reachable_redis_answers_ping(sqlite_url: str, redis_url: str) -> None:
    found = lines(make_settings(sqlite_url, redis_url=redis_url))
    assert found["broker"] == f"ok    broker: Redis at {redis_url} answers PING"


def test_the_rules_file_is_checked_and_every_channel_it_names(
    configured: Settings, slack: SlackServer, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "defaults: {slack_channel: '#incidents'}\nrules:\n  - name: pay\n"
        "    match: {provider: stripe}\n    route: {slack_channel: '#payments-oncall'}\n"
    )
    checks = [c.line() for c in run_checks(rebuilt(configured, rules_file=str(rules)))]
    assert any(line.startswith(f"ok    rules: 1 rules in {rules}, hash ") for line in checks)
    assert "ok    slack channel: the bot is a member of #incidents" in checks
    # The fake workspace has no #payments-oncall: a rule routing there would fail its posts.
    assert any(line.startswith("fail  slack channel: #payments-oncall") for line in checks), checks
    rules.write_text("rules: [oops\n")
    bad = lines(rebuilt(configured, rules_file=str(rules)))["rules"]
    assert bad.startswith(f"fail  rules: {rules}:2: not valid YAML")
