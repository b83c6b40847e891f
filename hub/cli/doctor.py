"""`hub doctor`: is this hub set up to work? One line per check, `ok|warn|fail  what: detail`,
exit code 1 when any check fails (0 otherwise); `--json` prints the list for scripts.

Checks: the database (reachable and migrated), the broker (Redis PING, or embedded), the
providers mounted, Slack (the token's `auth.test`, membership of the incident channel), GitHub
(the token can open issues in HUB_GITHUB_INCIDENT_REPO), this server's clock against Slack's or
GitHub's `Date`, and the Stripe key. Each outbound check waits 3 s at most. No line ever holds
a secret: the clients' errors name the call and the provider's error code only.

Imported when the CLI builds its parser: everything heavy is imported inside the checks."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from hub.config import Settings

TIMEOUT_S = 3.0
# Stripe and Slack refuse signatures more than 300 s off; a minute is time to act.
SKEW_WARN_S = 60.0


@dataclass(frozen=True)
class Check:
    status: str  # ok | warn | fail
    what: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.what}: {self.detail}"


@dataclass
class Clock:
    """`Date` headers seen in the providers' answers, to compare with this server's time."""

    now: Callable[[], float]
    seen: list[tuple[str, str, float]]  # (who, Date header, local time when answered)

    def note(self, who: str, date: str | None, asked_at: float) -> None:
        if date:
            self.seen.append((who, date, (asked_at + self.now()) / 2))


def register(sub: Any) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check the database, broker, providers and Slack/GitHub/Stripe access",
        description="One line per check (ok, warn or fail); exit code 1 when any fails.",
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as a JSON list")
    doctor.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from hub.config import Settings

    checks = run_checks(Settings())
    if args.json:
        json.dump([asdict(c) for c in checks], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for check in checks:
            print(check.line())
    return 1 if any(c.status == "fail" for c in checks) else 0


def run_checks(settings: Settings, now: Callable[[], float] = time.time) -> list[Check]:
    clock = Clock(now, [])
    checks = [
        *_guarded("database", lambda: [_database(settings)]),
        *_guarded("broker", lambda: [_broker(settings)]),
        _providers(settings),
        _rules(settings),
        *_guarded("admin API", lambda: [_admin_tokens(settings)]),
        *_guarded("slack", lambda: _slack(settings, clock)),
        *_guarded("github", lambda: _github(settings, clock)),
        *_guarded("stripe", lambda: [_stripe(settings)]),
    ]
    checks.append(_clock(clock, settings))
    return checks


def _guarded(what: str, run: Callable[[], list[Check]]) -> list[Check]:
    """A check that raised is a fail line: the error's own text when it is one of the
    clients' (which never quote a secret), its type otherwise."""
    from integrations.outbound import OutboundError

    try:
        return run()
    except OutboundError as exc:
        return [Check("fail", what, str(exc))]
    except Exception as exc:
        return [Check("fail", what, f"unexpected {type(exc).__name__}")]


def _database(settings: Settings) -> Check:
    from hub.runtime.schema import describe, packaged_head, problem, sqlite_file

    url = settings.database_url
    line = problem(url)
    if line is not None:
        return Check("fail", "database", line)
    path = sqlite_file(url)
    where = f"{path} " if path is not None else ""
    return Check("ok", "database", f"{where}migrated to {packaged_head()} ({describe(url)})")


def _broker(settings: Settings) -> Check:
    if not settings.redis_url:
        return Check("ok", "broker", "embedded (no HUB_REDIS_URL: hub serve runs the workers)")
    import redis

    shown = _without_password(settings.redis_url)
    client = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        return Check(
            "fail", "broker", f"Redis at {shown} does not answer PING: {type(exc).__name__}"
        )
    finally:
        client.close()
    return Check("ok", "broker", f"Redis at {shown} answers PING")


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


_SECRET_VARS = {
    "stripe": "HUB_STRIPE_WEBHOOK_SECRETS",
    "github": "HUB_GITHUB_WEBHOOK_SECRETS",
    "slack": "HUB_SLACK_SIGNING_SECRETS",
}


def _providers(settings: Settings) -> Check:
    secrets = settings.webhook_secrets()
    mounted = [name for name, values in secrets.items() if values]
    missing = [name for name, values in secrets.items() if not values]
    if not mounted:
        wanted = ", ".join(_SECRET_VARS.values())
        return Check("warn", "providers", f"none mounted: set one of {wanted}")
    text = ", ".join(f"/webhooks/{name}" for name in mounted) + " mounted"
    if missing:
        text += "; not " + ", ".join(f"{name} (no {_SECRET_VARS[name]})" for name in missing)
    return Check("ok", "providers", text)


def _admin_tokens(settings: Settings) -> Check:
    env = [t for t in settings.admin_tokens if t.get_secret_value().strip()]
    if env:
        return Check("ok", "admin API", f"{len(env)} token(s) in HUB_ADMIN_TOKENS")
    from hub.runtime.schema import problem

    if problem(settings.database_url) is None:
        from hub.admin.tokens import TokenStore
        from hub.runtime.db import make_engine

        engine = make_engine(settings.database_url)
        try:
            live = [t.name for t in TokenStore(engine).list() if t.revoked_at is None]
        finally:
            engine.dispose()
        if live:
            return Check("ok", "admin API", f"{len(live)} token(s) made with `hub tokens create`")
    return Check(
        "warn",
        "admin API",
        "HUB_ADMIN_TOKENS is not set (nor a token made with `hub tokens create`): "
        "the admin API refuses every request",
    )


def _slack(settings: Settings, clock: Clock) -> list[Check]:
    if settings.slack_bot_token is None:
        return [Check("ok", "slack", "no HUB_SLACK_BOT_TOKEN: incident messages go to the log")]
    from integrations.outbound import Permanent
    from integrations.slack_api import SlackClient

    token = settings.slack_bot_token.get_secret_value()
    client = SlackClient(token, settings.slack_api_url, timeout=TIMEOUT_S)
    asked = clock.now()
    try:
        me, date = client.whoami()
    except Permanent as exc:
        return [Check("fail", "slack token", f"{exc} (check HUB_SLACK_BOT_TOKEN)")]
    clock.note("Slack", date, asked)
    who = f"valid: {me.get('user') or '?'} in {me.get('team') or '?'} (auth.test)"
    checks = [Check("ok", "slack token", who)]
    for channel in _channels(settings):
        try:
            member = client.is_member(channel)
        except Permanent as exc:
            checks.append(Check("fail", "slack channel", f"{channel}: {exc}"))
            continue
        if member:
            checks.append(Check("ok", "slack channel", f"the bot is a member of {channel}"))
        else:
            fix = f"the bot is not a member of {channel}: invite it (/invite @{me.get('user')})"
            checks.append(Check("fail", "slack channel", fix))
    return checks


def _rules(settings: Settings) -> Check:
    if not settings.rules_file:
        return Check("ok", "rules", "no HUB_RULES_FILE: the built-in catalogue alone")
    from hub.rules.document import RulesError
    from hub.rules.state import read

    try:
        rules = read(settings.rules_file)
    except RulesError as exc:
        more = f" (and {len(exc.errors) - 1} more: hub rules check)" if len(exc.errors) > 1 else ""
        return Check("fail", "rules", exc.errors[0] + more)
    return Check("ok", "rules", f"{len(rules.rules)} rules in {settings.rules_file}, hash "
                 f"{rules.hash}")  # fmt: skip


def _channels(settings: Settings) -> list[str]:
    """Every channel an incident may be posted to: the default, and each the rules name."""
    found = [settings.slack_incident_channel]
    if settings.rules_file:
        from hub.rules.document import RulesError
        from hub.rules.state import read

        try:
            rules = read(settings.rules_file)
        except RulesError:
            return found  # the rules check says why
        named = [rules.defaults.slack_channel] + [
            (r.spec.route or r.spec.incident).slack_channel  # type: ignore[union-attr]
            for r in rules.rules
            if r.spec.route or r.spec.incident
        ]
        if rules.defaults.slack_channel:
            found = []
        found += [c for c in named if c and c not in found]
    return found


def _github(settings: Settings, clock: Clock) -> list[Check]:
    token, repo = settings.github_token, settings.github_incident_repo
    if token is None and not repo:
        return [Check("ok", "github", "no HUB_GITHUB_TOKEN: no tracking issues")]
    if token is None or not repo:
        unset = "HUB_GITHUB_INCIDENT_REPO" if token is not None else "HUB_GITHUB_TOKEN"
        return [Check("warn", "github", f"{unset} is not set: no tracking issues")]
    from integrations.github_api import IssueTracker

    tracker = IssueTracker(token.get_secret_value(), settings.github_api_url, repo, TIMEOUT_S)
    asked = clock.now()
    access = tracker.access()
    clock.note("GitHub", access.date, asked)
    if access.archived:
        return [Check("fail", "github", f"{repo} is archived: no issues can be opened")]
    if not access.has_issues:
        return [Check("fail", "github", f"{repo} has issues turned off")]
    if access.push is False and access.triage is False:
        detail = f"the token can open issues in {repo} but not label them (needs triage)"
        return [Check("warn", "github", detail)]
    return [Check("ok", "github", f"the token can open issues in {repo}")]


def _stripe(settings: Settings) -> Check:
    if settings.stripe_api_key is None:
        return Check("ok", "stripe", "no HUB_STRIPE_API_KEY: events decide from their payload")
    from integrations.stripe_api import StripeReader

    key = settings.stripe_api_key.get_secret_value()
    StripeReader(key, settings.stripe_api_base, TIMEOUT_S).check_key()
    return Check("ok", "stripe", "the key is accepted and may read disputes")


def _clock(clock: Clock, settings: Settings) -> Check:
    if not clock.seen:
        return Check("ok", "clock", "not compared (no Slack or GitHub answer to compare with)")
    who, date, at = clock.seen[0]
    try:
        theirs = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return Check("warn", "clock", f"{who}'s Date header is unreadable: {date[:40]!r}")
    skew = at - theirs  # positive: this server is ahead
    if abs(skew) <= SKEW_WARN_S:
        return Check("ok", "clock", f"within {max(1, round(abs(skew)))} s of {who}'s")
    way = "ahead of" if skew > 0 else "behind"
    return Check(
        "warn",
        "clock",
        f"this server's clock is {abs(skew):.0f} s {way} {who}'s: Stripe and Slack refuse "
        f"signatures more than {settings.signature_tolerance_s} s off; sync it (NTP)",
    )
