"""`hub events|replay|incidents|tokens|audit|stats|retention`: the admin surface from a terminal.

The commands work on the database the hub uses (HUB_DATABASE_URL) through the same code as
the admin API, so they need no token and work while the API is down; the audit trail names
them `cli:<user>`. Replays hand events to Redis when HUB_REDIS_URL is set; an embedded hub
(no broker this process could reach) picks them up through its sweeper at their turn.

Each command imports what it needs when it runs, so `hub --help` loads none of it. The read
commands take `--json`: one JSON document on stdout in the admin API's shapes (json_out.py).
Event and incident ids may be given by a unique prefix (ids.py)."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hub.cli.output import ProgressBar, fields, table, when

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from hub.admin.replay import Replayer
    from hub.container import Container
    from hub.events.queries import EventFilter

# The choices offered, written out so that building the parser imports no model
# (tests/test_cli_scripting.py checks them against hub.events.models.Status and the API).
PROVIDERS = ("stripe", "github", "slack")
EVENT_STATUSES = ("received", "queued", "processing", "processed", "ignored", "failed")
INCIDENT_STATES = ("open", "acknowledged", "resolved")
SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
SCOPES = "read,replay,incidents,admin"
JSON_HELP = "print one JSON document (the admin API's fields) instead of a table"


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _container() -> Container:
    from hub.config import Settings
    from hub.container import build

    return build(Settings())


def _filters(args: argparse.Namespace) -> EventFilter:
    from hub.events.models import Status
    from hub.events.queries import EventFilter

    status = Status(args.status) if args.status else None
    return EventFilter(args.provider, args.type, status, args.since, args.until)


def _resolved(engine: Engine, given: str, kind: str) -> str | None:
    """The full id for a unique prefix (or `given` as is); None, said on stderr, when the
    prefix matches several."""
    from hub.cli.ids import AmbiguousId, resolve_event, resolve_incident

    try:
        return (resolve_event if kind == "event" else resolve_incident)(engine, given)
    except AmbiguousId as exc:
        print(str(exc), file=sys.stderr)
        return None


def events_list(args: argparse.Namespace) -> int:
    from hub.events.queries import EventQueries

    c = _container()
    page = EventQueries(c.engine).list_events(_filters(args), None, args.limit)
    if args.json:
        from hub.cli import json_out

        json_out.emit([json_out.event_summary(e) for e in page.items])
        return 0
    rows = [
        (e.id, when(e.received_at), e.provider, e.type, e.status, e.runs, e.last_error or "")
        for e in page.items
    ]
    table(
        ("ID", "RECEIVED (UTC)", "PROVIDER", "TYPE", "STATUS", "RUNS", "LAST ERROR"),
        rows,
        sys.stdout,
    )
    return 0


def events_show(args: argparse.Namespace) -> int:
    from hub.events.queries import EventQueries

    engine = _container().engine
    event_id = _resolved(engine, args.event_id, "event")
    if event_id is None:
        return 2
    stored = EventQueries(engine).get_event(event_id)
    if stored is None:
        print(f"no event with id {args.event_id}", file=sys.stderr)
        return 1
    if args.raw:  # the body exactly as received, for piping
        sys.stdout.buffer.write(stored.body)
        return 0
    if args.json:
        from hub.cli import json_out

        json_out.emit(json_out.event_detail(stored))
        return 0
    e = stored.event
    fields(
        [
            ("id", e.id),
            ("provider", e.provider),
            ("type", e.type),
            ("delivery id", e.delivery_id),
            ("status", e.status),
            ("received", when(e.received_at)),
            ("runs", e.runs),
            ("last error", e.last_error),
            ("redacted", when(e.redacted_at) if e.redacted_at else None),
            ("decided by", f"rule {stored.decided_by}" if stored.decided_by else "catalogue"),
        ],
        sys.stdout,
    )
    print("\nheaders:")
    for key, value in stored.headers.items():
        print(f"  {key}: {value}")
    print("\nattempts:")
    table(
        ("STARTED (UTC)", "WORKFLOW", "OUTCOME", "RULE", "ERROR"),
        [
            (when(a.started_at), a.workflow, a.outcome, a.rule, a.error or a.detail or "")
            for a in stored.attempts
        ],
        sys.stdout,
    )
    body = stored.body.decode("utf-8", "replace")
    print(f"\nbody ({len(stored.body)} bytes; --raw for the exact bytes):")
    print(body[:2000] + (" ..." if len(body) > 2000 else ""))
    return 0


def replay(args: argparse.Namespace) -> int:
    from hub.admin.replay import Replayer

    c = _container()
    replayer = Replayer(
        c.engine,
        c.events,
        per_second=c.settings.replay_per_second,
        grace_s=c.settings.requeue_queued_after_s,
        handoff=not c.embedded,
    )
    if args.event_ids:
        return _replay_each(c.engine, replayer, args.event_ids)
    if not (args.dry_run or args.all or args.yes or _filtered(args)):
        refused = _confirm_everything(c.engine)
        if refused is not None:
            return refused
    result = replayer.replay_matching(_filters(args), _actor(), dry_run=args.dry_run)
    if args.json:  # the API's answer; follow with GET /admin/replays/{replay_id}
        from hub.cli import json_out
        from hub.web.admin_schemas import replay_out

        json_out.emit(replay_out(result))
        return 0
    if args.dry_run:
        print(f"{result.matched} events match; nothing replayed (dry run)")
        return 0
    print(
        f"{result.matched} matched, {result.replayed} replayed, {result.skipped} skipped "
        f"(already on their way or redacted); replay {result.replay_id}"
    )
    if result.replay_id is None or not result.replayed or args.no_wait:
        return 0
    return _follow(replayer, result.replay_id, result.replayed, args.timeout)


def _filtered(args: argparse.Namespace) -> bool:
    return any(getattr(args, name) for name in ("provider", "type", "status", "since", "until"))


def _confirm_everything(engine: Engine) -> int | None:
    """No ids and no filter means every event: ask on a terminal, refuse (exit 2) elsewhere.
    None when the person said yes."""
    from hub.events.queries import EventQueries

    total = sum(EventQueries(engine).stats().by_status.values())
    if not sys.stdin.isatty():
        print(
            f"hub replay: no event ids and no filter would replay all {total:,} events; "
            "add a filter (e.g. --status failed) or --all/--yes",
            file=sys.stderr,
        )
        return 2
    print(f"Replay all {total:,} events? [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        print("nothing replayed", file=sys.stderr)
        return 1
    return None


def _replay_each(engine: Engine, replayer: Replayer, event_ids: list[str]) -> int:
    code = 0
    for given in event_ids:
        event_id = _resolved(engine, given, "event")
        if event_id is None:
            code = 2
            continue
        outcome = replayer.replay_one(event_id, _actor())
        print(f"{event_id}: {outcome.verdict}" + (f" ({outcome.status})" if outcome.status else ""))
        code = code or int(outcome.verdict in ("not_found", "redacted"))
    return code


def _follow(replayer: Replayer, replay_id: str, total: int, timeout: float) -> int:
    bar = ProgressBar(total)
    deadline = time.monotonic() + timeout
    try:
        while True:
            progress = replayer.progress(replay_id)
            assert progress is not None
            failed = progress.by_status.get("failed", 0)
            bar.show(total - progress.remaining, f"failed: {failed}" if failed else "")
            if progress.remaining == 0:
                return 1 if failed else 0
            if time.monotonic() > deadline:
                print(f"\nstill running; follow with GET /admin/replays/{replay_id}")
                return 0
            time.sleep(0.5)
    finally:
        bar.close()


def incidents_list(args: argparse.Namespace) -> int:
    from hub.incidents.queries import IncidentFilter, list_incidents

    filters = IncidentFilter(args.status, args.severity, args.since)
    found = list_incidents(_container().engine, filters, None, args.limit)
    if args.json:
        from hub.cli import json_out

        json_out.emit([json_out.incident(i) for i in found])
        return 0
    rows = [(i.id, i.severity, i.status, i.occurrences, when(i.last_seen), i.title) for i in found]
    table(("ID", "SEV", "STATUS", "COUNT", "LAST SEEN (UTC)", "TITLE"), rows, sys.stdout)
    return 0


def incidents_show(args: argparse.Namespace) -> int:
    from hub.incidents.queries import get_incident

    engine = _container().engine
    incident_id = _resolved(engine, args.incident_id, "incident")
    if incident_id is None:
        return 2
    detail = get_incident(engine, incident_id)
    if detail is None:
        print(f"no incident with id {args.incident_id}", file=sys.stderr)
        return 1
    if args.json:
        from hub.cli import json_out

        json_out.emit(json_out.incident_detail(detail))
        return 0
    i = detail.incident
    slack = f"{i.slack_channel} {i.slack_ts}" if i.slack_ts else None
    fields(
        [
            ("id", i.id),
            ("title", i.title),
            ("severity", i.severity),
            ("status", i.status),
            ("occurrences", i.occurrences),
            ("first seen", when(i.first_seen)),
            ("last seen", when(i.last_seen)),
            ("slack", slack),
            ("github issue", i.github_issue),
            ("key", i.key),
        ],
        sys.stdout,
    )
    print("\ntimeline:")
    table(
        ("AT (UTC)", "WHO", "WHAT", "DETAIL"),
        [(when(t.at), t.actor, t.action, t.detail) for t in detail.timeline],
        sys.stdout,
    )
    return 0


def incidents_change(args: argparse.Namespace) -> int:
    from hub.admin import audit
    from hub.incidents.changes import VERBS, StatusChange, change_status

    c = _container()
    incident_id = _resolved(c.engine, args.incident_id, "incident")
    if incident_id is None:
        return 2
    change = StatusChange(VERBS[args.verb], _actor(), f"cli:{uuid.uuid4().hex}", args.note)
    outcome = change_status(
        c.engine, c.events, incident_id, change, github=c.settings.tracks_github
    )
    if outcome.incident_id is None or not outcome.changed:
        print(f"{incident_id}: {outcome.message}", file=sys.stderr)
        return 1
    audit.write_entry(c.engine, _actor(), f"incident.{args.verb}", incident_id, note=args.note)
    print(f"{incident_id}: {outcome.message}")
    return 0


def tokens(args: argparse.Namespace) -> int:
    from hub.admin.tokens import TokenError, TokenStore, parse_scopes

    store = TokenStore(_container().engine)
    try:
        if args.action == "create":
            secret, info = store.create(args.name, parse_scopes(args.scopes), _actor())
            print(f"token {info.name} ({', '.join(sorted(info.scopes))}); shown once, keep it:")
            print(secret)
        elif args.action == "revoke":
            if not store.revoke(args.name, _actor()):
                print(f"no live token named {args.name}", file=sys.stderr)
                return 1
            print(f"token {args.name} revoked")
        else:
            _tokens_list(store.list(), args.json)
    except TokenError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


def _tokens_list(found: list[Any], as_json: bool) -> None:
    if as_json:
        from hub.cli import json_out

        json_out.emit([json_out.token(t) for t in found])
        return
    rows = [
        (
            t.name,
            t.prefix + "...",
            ",".join(sorted(t.scopes)),
            when(t.created_at),
            t.created_by,
            when(t.last_used_at),
            when(t.revoked_at),
        )
        for t in found
    ]
    table(("NAME", "PREFIX", "SCOPES", "CREATED", "BY", "LAST USED", "REVOKED"), rows, sys.stdout)


def audit_log(args: argparse.Namespace) -> int:
    import json

    from hub.admin.audit import AuditFilter, list_entries

    filters = AuditFilter(args.actor, args.action, args.since, args.until)
    found = list_entries(_container().engine, filters, None, args.limit)
    if args.json:
        from hub.cli import json_out

        json_out.emit([json_out.audit_entry(a) for a in found])
        return 0
    rows = [
        (a.id, when(a.at), a.actor, a.action, a.target or "-",
         json.dumps(a.detail, sort_keys=True, default=str) if a.detail else "")
        for a in found
    ]  # fmt: skip
    table(("ID", "AT (UTC)", "ACTOR", "ACTION", "TARGET", "DETAIL"), rows, sys.stdout)
    return 0


def stats(args: argparse.Namespace) -> int:
    from hub.events.queries import EventQueries

    counts = EventQueries(_container().engine).stats()
    if args.json:
        from hub.cli import json_out

        json_out.emit(json_out.stats(counts))
        return 0
    table(("STATUS", "EVENTS"), list(counts.by_status.items()), sys.stdout)
    print()
    table(("PROVIDER", "EVENTS"), list(counts.by_provider.items()), sys.stdout)
    return 0


def retention(args: argparse.Namespace) -> int:
    from hub.admin.retention import run_retention

    c = _container()
    r = run_retention(c.engine, c.settings, _actor(), dry_run=args.dry_run)
    verb = "would empty" if r.dry_run else "emptied"
    print(
        f"{verb} the bodies of {r.processed_redacted} processed/ignored events older than "
        f"{c.settings.retain_processed_days:g} days and {r.failed_redacted} failed events "
        f"older than {c.settings.retain_failed_days:g} days"
    )
    return 0


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _event_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider", choices=PROVIDERS, help="only this provider's events")
    p.add_argument("--type", help="only this event type, e.g. workflow_run.completed")
    p.add_argument("--status", choices=EVENT_STATUSES, help="only events in this state")
    p.add_argument(
        "--since", type=_iso, help="received at or after (ISO 8601, UTC unless an offset is given)"
    )
    p.add_argument("--until", type=_iso, help="received before (ISO 8601)")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def _limit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=20, help="at most this many, newest first (20)")


def register(sub: Any) -> None:
    ev = sub.add_parser("events", help="list and show stored events").add_subparsers(
        dest="events_command", required=True
    )
    ls = ev.add_parser("list", help="stored events, newest first")
    _event_filters(ls)
    _limit(ls)
    _json(ls)
    ls.set_defaults(func=events_list)
    show = ev.add_parser("show", help="one event: headers, attempts, body")
    show.add_argument("event_id", help="an event id, or a unique prefix of one (evt_01KB...)")
    shown = show.add_mutually_exclusive_group()
    shown.add_argument("--raw", action="store_true", help="write only the body, byte for byte")
    shown.add_argument("--json", action="store_true", help=JSON_HELP)
    show.set_defaults(func=events_show)
    from hub.cli import rejections  # `hub events rejected`: webhook requests refused

    rejections.register(ev)

    rp = sub.add_parser("replay", help="run events through their workflows again")
    rp.add_argument(
        "event_ids", nargs="*", help="these events, or unique prefixes (else every one matching)"
    )
    _event_filters(rp)
    rp.add_argument("--dry-run", action="store_true", help="only count what matches")
    rp.add_argument("--all", action="store_true", help="no ids and no filter: every event")
    rp.add_argument("--yes", action="store_true", help="do not ask before replaying every event")
    rp.add_argument("--no-wait", action="store_true", help="do not follow the progress")
    rp.add_argument(
        "--timeout", type=float, default=3600.0, help="stop following after SECONDS (3600)"
    )
    rp.add_argument(
        "--json", action="store_true", help="print the admin API's answer as JSON; do not follow"
    )
    rp.set_defaults(func=replay)

    _register_incidents(sub)
    _register_tokens(sub)

    au = sub.add_parser("audit", help="the audit trail: who did what, newest first")
    au.add_argument("--actor", help="only this actor, e.g. cli:alice or a token's name")
    au.add_argument("--action", help="only this action, e.g. replay.start or incident.ack")
    au.add_argument("--since", type=_iso, help="at or after (ISO 8601)")
    au.add_argument("--until", type=_iso, help="before (ISO 8601)")
    _limit(au)
    _json(au)
    au.set_defaults(func=audit_log)

    st = sub.add_parser("stats", help="event counts by status and by provider")
    _json(st)
    st.set_defaults(func=stats)

    rt = sub.add_parser("retention", help="empty old event bodies").add_subparsers(
        dest="retention_command", required=True
    )
    run = rt.add_parser("run", help="empty the bodies retention would empty now")
    run.add_argument("--dry-run", action="store_true", help="only count what would be emptied")
    run.set_defaults(func=retention)


def _register_incidents(sub: Any) -> None:
    inc = sub.add_parser("incidents", help="list, show, acknowledge, resolve").add_subparsers(
        dest="incidents_command", required=True
    )
    il = inc.add_parser("list", help="incidents, newest first")
    il.add_argument("--status", choices=INCIDENT_STATES, help="only incidents in this state")
    il.add_argument("--severity", choices=SEVERITIES, help="only this severity")
    il.add_argument("--since", type=_iso, help="last seen at or after (ISO 8601)")
    _limit(il)
    _json(il)
    il.set_defaults(func=incidents_list)
    ishow = inc.add_parser("show", help="one incident with its timeline")
    ishow.add_argument("incident_id", help="an incident id, or a unique prefix of one")
    _json(ishow)
    ishow.set_defaults(func=incidents_show)
    verbs = {"ack": "acknowledge, as the Slack button does", "resolve": "resolve",
             "reopen": "reopen a resolved incident"}  # fmt: skip
    for verb, what in verbs.items():
        change = inc.add_parser(verb, help=what)
        change.add_argument("incident_id", help="an incident id, or a unique prefix of one")
        change.add_argument("--note", default="", help="shown in the Slack thread and timeline")
        change.set_defaults(func=incidents_change, verb=verb)


def _register_tokens(sub: Any) -> None:
    tk = sub.add_parser("tokens", help="scoped admin API tokens").add_subparsers(
        dest="action", required=True
    )
    create = tk.add_parser("create", help="make a token; its secret is shown once")
    create.add_argument("--name", required=True, help="what the token is for, e.g. grafana")
    create.add_argument("--scopes", required=True, help=f"comma-separated: {SCOPES}")
    revoke = tk.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("name", help="the token's name")
    tl = tk.add_parser("list", help="every token, never its secret")
    _json(tl)
    for p in (create, revoke, tl):
        p.set_defaults(func=tokens)
