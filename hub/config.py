"""Settings, read from `HUB_*` environment variables and `.env` only when asked for."""

from __future__ import annotations

import difflib
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIB = 1024 * 1024
LOG_FORMATS = ("auto", "json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Lists arrive comma-separated; NoDecode stops pydantic-settings from expecting JSON.
SecretList = Annotated[list[SecretStr], NoDecode]


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    # env_ignore_empty: `HUB_SLACK_BOT_TOKEN=` (as compose files write) means unset, not "".
    model_config = SettingsConfigDict(
        env_prefix="HUB_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    database_url: str = "sqlite:///./hub.db"
    redis_url: str | None = None

    stripe_webhook_secrets: SecretList = Field(default_factory=list)
    github_webhook_secrets: SecretList = Field(default_factory=list)
    slack_signing_secrets: SecretList = Field(default_factory=list)
    signature_tolerance_s: int = 300

    slack_bot_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_incident_channel: str = "#incidents"
    github_token: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    github_incident_repo: str | None = None
    # Read-only use: Stripe workflows confirm a dispute's or payout's current state and fetch
    # the object a thin event refers to. Unset: they decide from the event alone, as before.
    stripe_api_key: SecretStr | None = None
    stripe_api_base: str = "https://api.stripe.com"

    admin_tokens: SecretList = Field(default_factory=list)
    # Signs the web console's session cookies (hub/web/console/session.py). Unset: derived
    # from HUB_ADMIN_TOKENS, so every process behind a load balancer agrees and changing the
    # tokens ends every session; with no such tokens, a random key per process.
    console_secret: SecretStr | None = None
    console_session_hours: float = 8.0
    # Inbound limits (`limits` syntax: "600/minute"), shared through Redis when configured.
    # The admin API per token; requests that fail verification (or admin auth) per client
    # address.
    # Verified deliveries are never limited: GitHub does not retry a 429.
    admin_rate_limit: str = "600/minute"
    unverified_rate_limit: str = "120/minute"
    # Bulk replays hand this many events a second to the workers, not all at once.
    replay_per_second: float = 100.0
    # Retention: raw bodies of settled events are emptied after this many days; the event's
    # metadata, attempts and the audit trail stay. 0 keeps bodies for ever.
    retain_processed_days: float = 30.0
    retain_failed_days: float = 90.0
    retention_interval_s: float = 3600.0  # 0: no periodic job (`hub retention run` only)

    # Routing rules (hub/rules/, deploy/rules.example.yaml): a YAML file deciding what
    # becomes an incident and where it goes. Unset: the built-in catalogue alone. Its
    # `defaults` take precedence over HUB_SLACK_INCIDENT_CHANNEL and HUB_GITHUB_INCIDENT_REPO.
    # Every process checks for a reload asked of any of them this often.
    rules_file: str | None = None
    rules_poll_s: float = 2.0

    # Incidents. Open and unacknowledged this long: one escalation (a thread mention).
    escalate_after_s: float = 900.0
    slack_oncall: str | None = None  # e.g. <!subteam^S123> or <@U123>; unset: no mention
    # Outbound pacing, shared by all workers: Slack allows about one post per second per
    # channel and some hundreds a minute per workspace; chat.update is its tier 3 (~50/min).
    # 1.1 rather than 1.0: a post reserved on time can still leave a moment late (a busy
    # core), and two sent under a second apart is a 429.
    slack_channel_interval_s: float = 1.1
    slack_workspace_per_minute: int = 300
    slack_updates_per_minute: int = 50
    github_per_minute: int = 60
    # Stripe allows 100 reads a second per account in live mode (25 in test mode) and
    # answers 429 beyond; a quarter of the live budget leaves room for the other software
    # that shares the account's key and for test mode.
    stripe_reads_per_second: float = 25.0
    # A worker delivering an incident's effects holds it this long at most (then it is
    # presumed dead and another takes over): longer than a few slow HTTP calls.
    effect_lease_s: float = 60.0
    # A Slack or GitHub call failing this many times (backoff doubling from the minimum,
    # about 8.5 minutes in all by default) is given up: its event shows as `failed`, and
    # replaying the event once the cause is fixed makes the call.
    effect_max_failures: int = 8
    effect_min_backoff_s: float = 2.0

    # The hub's own health as incidents (handlers.upkeep.selfhealth); a threshold of 0: no check.
    health_check_interval_s: float = 30.0
    health_window_s: float = 900.0
    health_failed_events: int = 25  # failed within the window
    health_queue_depth: int = 10_000  # events received but not yet processed
    health_slack_429s: int = 10  # Slack 429 answers between two checks
    health_clear_after_s: float = 300.0  # clear this long before the incident resolves

    max_body_bytes: int = 25 * MIB

    # Workers: retries per event, then `failed`. Backoff doubles from the minimum.
    worker_max_retries: int = 5
    worker_min_backoff_ms: int = 2_000
    worker_max_backoff_ms: int = 300_000
    worker_threads: int = 4
    # Without Redis, `hub serve` runs the workers itself: in a child process it starts and
    # stops with itself ("process"), where a workflow cannot hold the API's GIL, or as
    # threads of the API process ("thread": one process, for tests and debugging).
    embedded_workers: Literal["process", "thread"] = "process"
    # Workers run this much "nicer" than the API where they share cores: answering senders
    # comes first, and the backlog drains in the API's idle time. 0 turns it off. Unset: 19
    # for the embedded hub's worker process, which always shares the API's core, and 10 for
    # worker threads and `hub worker` processes, which may share cores with other busy work
    # (at 19 they starved under the test suite's load). Measured with `make bench`, the
    # embedded worker process on the API's core and 20% of events running workflows: at 10
    # the API answered 0.86x the bare route's rate, p99 18.5 ms; at 15 0.97x, 16.0 ms; at 19
    # 0.92-1.02x, 13.5-18.2 ms, and the backlog (7,000 events) drained within 3 s of the
    # load stopping. Under a load that never lets up, the backlog waits. While the embedded
    # worker process holds SQLite's write lock it runs at the API's priority where the OS
    # allows it (CAP_SYS_NICE): the API may be waiting for that lock; with that, 19 puts it in
    # Linux's idle class instead, which takes less of a busy core (hub/runtime/priority.py).
    worker_nice: int | None = None
    # An event stuck in `processing` longer than this is taken back by the sweeper: a worker
    # that died mid-event must not wait for Dramatiq's 60 s heartbeat plus a random pass.
    processing_lease_s: float = 30.0
    # An event `received` but not handed to the queue this long (enqueue failed, process
    # died) is enqueued again; a `queued` one this long (broker lost it) likewise.
    requeue_received_after_s: float = 10.0
    requeue_queued_after_s: float = 300.0
    sweep_interval_s: float = 5.0
    # /metrics counts processed and ignored events and resolved incidents (the settled
    # history: a walk over every such row) at most this often; the rest at every scrape.
    metrics_history_max_age_s: float = Field(default=60.0, ge=0)
    # How often the API reloads the kinds that workers route (hub/events/routed_kinds.py); any
    # other kind is stored `ignored` at once instead of going through the queue. 0: everything goes
    # through the queue, and workers mark unrouted kinds `ignored` there.
    routes_refresh_s: float = 5.0
    # Dramatiq returns a dead worker's unacked messages once its heartbeat is this old and a
    # maintenance pass runs (a random fraction of calls); its defaults (60 s, 0.1%) can take
    # minutes. Events already claimed are recovered by the lease above, sooner.
    broker_heartbeat_timeout_ms: int = 15_000
    broker_maintenance_per_million: int = 20_000
    queue_name: str = "hub-events"
    redis_namespace: str = "hub"

    # SQLite only. NORMAL (WAL): a committed event survives the hub crashing or being
    # killed, not the machine losing power; FULL fsyncs every (group) commit so it survives
    # that too, at about a third of the throughput here. PostgreSQL is the durable mode.
    sqlite_synchronous: str = "NORMAL"

    # Logs (hub/runtime/logs.py): `json` (one object per line), `text`, or `auto`: text
    # on a terminal, JSON otherwise. Every record carries the ids bound where it was written.
    log_format: str = "auto"
    log_level: str = "INFO"

    @field_validator(
        "stripe_webhook_secrets",
        "github_webhook_secrets",
        "slack_signing_secrets",
        "admin_tokens",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split(value)

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in LOG_FORMATS:
            return value.strip().lower()
        raise ValueError(f"HUB_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {value!r}")

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
            return value.strip().upper()
        raise ValueError(f"HUB_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {value!r}")

    @property
    def tracks_github(self) -> bool:
        """A token is set: incidents get tracking issues in their repository (the one routing
        rules name, else HUB_GITHUB_INCIDENT_REPO); an incident with neither gets none."""
        return self.github_token is not None

    def nice(self, *, embedded_process: bool = False) -> int:
        """HUB_WORKER_NICE, or its default for where the workers run (see worker_nice)."""
        if self.worker_nice is not None:
            return self.worker_nice
        return 19 if embedded_process else 10

    def webhook_secrets(self) -> dict[str, list[str]]:
        """Provider name -> its secrets; a provider with none is not mounted."""
        return {
            "stripe": [s.get_secret_value() for s in self.stripe_webhook_secrets],
            "github": [s.get_secret_value() for s in self.github_webhook_secrets],
            "slack": [s.get_secret_value() for s in self.slack_signing_secrets],
        }


# HUB_* names that are not settings: `hub demo`'s target, the test suite's own knobs.
NOT_SETTINGS = frozenset({"HUB_URL", "HUB_FUZZ_PROFILE"})
TEST_PREFIX = "HUB_TEST_"
_UNITS = {
    "_bytes": " of bytes",
    "_ms": " of milliseconds",
    "_s": " of seconds",
    "_days": " of days",
    "_per_minute": " per minute",
    "_per_second": " per second",
}
_SECRET_WORDS = ("secret", "token", "key", "password")
_warned: set[str] = set()


class SettingsRefused(SystemExit):
    """The HUB_* settings cannot be read; `lines` (already on stderr) say which and why."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(2)
        self.lines = lines


def load_settings() -> Settings:
    """Settings from the environment and .env, or exit 2 with one line per bad variable
    (`HUB_MAX_BODY_BYTES=25MiB: not a whole number of bytes (e.g. 26214400)`)."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = settings_errors(exc)
        for line in lines:
            print(f"hub: {line}", file=sys.stderr)
        raise SettingsRefused(lines) from None


def settings_errors(exc: ValidationError) -> list[str]:
    """One line per bad variable: its name, what it got (never a secret), what it takes."""
    lines: dict[str, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        var = f"HUB_{name.upper()}"
        if var in lines:
            continue
        field = Settings.model_fields.get(name)
        got = "<hidden>" if _secret(name, field) else _shown(error.get("input"))
        lines[var] = f"{var}={got}: {_takes(name, var, field, error)}"
    return list(lines.values())


def _secret(name: str, field: FieldInfo | None) -> bool:
    annotation = repr(field.annotation) if field is not None else ""
    return "SecretStr" in annotation or any(word in name for word in _SECRET_WORDS)


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _takes(name: str, var: str, field: FieldInfo | None, error: Any) -> str:
    kind = str(error.get("type", ""))
    unit = next((u for suffix, u in _UNITS.items() if name.endswith(suffix)), "")
    default = field.default if field is not None else None
    example = f" (e.g. {default:.15g})" if isinstance(default, int | float) else ""
    if kind.startswith("int_"):
        return f"not a whole number{unit}{example}"
    if kind.startswith("float_"):
        return f"not a number{unit}{example}"
    if kind.startswith("bool_"):
        return "not true or false"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return message.removeprefix(f"{var} ").split(", not ")[0]


def unknown_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> list[str]:
    """A line for each HUB_* variable (or .env key) that is no setting, with the closest
    known name: misspelled settings are otherwise silently ignored."""
    from dotenv import dotenv_values

    known = sorted(f"HUB_{name.upper()}" for name in Settings.model_fields)
    found = {k.upper(): "" for k in (os.environ if environ is None else environ)}
    if env_file is not None and Path(env_file).is_file():
        for key in dotenv_values(env_file):
            found.setdefault(key.upper(), f" (in {env_file})")
    lines = []
    for name, where in sorted(found.items()):
        if not name.startswith("HUB_") or name in known or name in NOT_SETTINGS:
            continue
        if name.startswith(TEST_PREFIX):
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}?" if close else "see hub/config.py for the settings"
        lines.append(f"{name}{where} is not a setting; {hint}")
    return lines


def warn_unknown_settings() -> None:
    """Log `unknown_settings()` as warnings, each once per process."""
    for line in unknown_settings():
        if line not in _warned:
            _warned.add(line)
            logging.getLogger(__name__).warning("%s", line)
