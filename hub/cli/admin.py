"""`hub events|replay|incidents|tokens|retention`: the admin surface from a terminal.

The commands work on the database the hub uses (HUB_DATABASE_URL) through the same code as
the admin API, so they need no token and work while the API is down; the audit trail names
them `cli:<user>`. Replays hand events to Redis when HUB_REDIS_URL is set; an embedded hub
(no broker this process could reach) picks them up through its sweeper at their turn."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
import uuid
from datetime import datetime
from typing import Any

from hub.admin.replay import Replayer
from hub.admin.retention import run_retention
from hub.admin.tokens import TokenError, TokenStore, parse_scopes
from hub.cli.output import ProgressBar, fields, table, when
from hub.config import Settings
from hub.container import Container, build
from hub.events.models import Status
from hub.events.queries import EventFilter, EventQueries
from hub.incidents.changes import VERBS, StatusChange, change_status
from hub.incidents.queries import IncidentFilter, get_incident, list_incidents


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _container() -> Container:
    return build(Settings())


def _filters(args: argparse.Namespace) -> EventFilter:
    status = Status(args.status) if args.status else None
    return EventFilter(args.provider, args.type, status, args.since, args.until)


def events_list(args: argparse.Namespace) -> int:
    c = _container()
    page = EventQueries(c.engine).list_events(_filters(args), None, args.limit)
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
    stored = EventQueries(_container().engine).get_event(args.event_id)
    if stored is None:
        print(f"no event with id {args.event_id}", file=sys.stderr)
        return 1
    if args.raw:  # the body exactly as received, for piping
        sys.stdout.buffer.write(stored.body)
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
        ],
        sys.stdout,
    )
    print("\nheaders:")
    for key, value in stored.headers.items():
        print(f"  {key}: {value}")
    print("\nattempts:")
    table(
        ("STARTED (UTC)", "WORKFLOW", "OUTCOME", "ERROR"),
        [
            (when(a.started_at), a.workflow, a.outcome, a.error or a.detail or "")
            for a in stored.attempts
        ],
        sys.stdout,
    )
    body = stored.body.decode("utf-8", "replace")
    print(f"\nbody ({len(stored.body)} bytes; --raw for the exact bytes):")
    print(body[:2000] + (" ..." if len(body) > 2000 else ""))
    return 0


def replay(args: argparse.Namespace) -> int:
    c = _container()
    replayer = Replayer(
        c.engine,
        c.events,
        per_second=c.settings.replay_per_second,
        grace_s=c.settings.requeue_queued_after_s,
        handoff=not c.embedded,
    )
    if args.event_ids:
        return _replay_each(replayer, args.event_ids)
    result = replayer.replay_matching(_filters(args), _actor(), dry_run=args.dry_run)
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


def _replay_each(replayer: Replayer, event_ids: list[str]) -> int:
    code = 0
    for event_id in event_ids:
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
    filters = IncidentFilter(args.status, args.severity, args.since)
    rows = [
        (i.id, i.severity, i.status, i.occurrences, when(i.last_seen), i.title)
        for i in list_incidents(_container().engine, filters, None, args.limit)
    ]
    table(("ID", "SEV", "STATUS", "COUNT", "LAST SEEN (UTC)", "TITLE"), rows, sys.stdout)
    return 0


def incidents_show(args: argparse.Namespace) -> int:
    detail = get_incident(_container().engine, args.incident_id)
    if detail is None:
        print(f"no incident with id {args.incident_id}", file=sys.stderr)
        return 1
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

    c = _container()
    change = StatusChange(VERBS[args.verb], _actor(), f"cli:{uuid.uuid4().hex}", args.note)
    outcome = change_status(
        c.engine, c.events, args.incident_id, change, github=c.settings.tracks_github
    )
    if outcome.incident_id is None or not outcome.changed:
        print(f"{args.incident_id}: {outcome.message}", file=sys.stderr)
        return 1
    audit.write_entry(c.engine, _actor(), f"incident.{args.verb}", args.incident_id, note=args.note)
    print(f"{args.incident_id}: {outcome.message}")
    return 0


def tokens(args: argparse.Namespace) -> int:
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
                for t in store.list()
            ]
            table(
                ("NAME", "PREFIX", "SCOPES", "CREATED", "BY", "LAST USED", "REVOKED"),
                rows,
                sys.stdout,
            )
    except TokenError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


def retention(args: argparse.Namespace) -> int:
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
    p.add_argument("--provider", choices=("stripe", "github", "slack"))
    p.add_argument("--type", help="e.g. workflow_run.completed")
    p.add_argument("--status", choices=[s.value for s in Status])
    p.add_argument("--since", type=_iso, help="ISO 8601, UTC unless an offset is given")
    p.add_argument("--until", type=_iso)


def register(sub: Any) -> None:
    ev = sub.add_parser("events", help="list and show stored events").add_subparsers(
        dest="events_command", required=True
    )
    ls = ev.add_parser("list", help="newest first")
    _event_filters(ls)
    ls.add_argument("--limit", type=int, default=20)
    ls.set_defaults(func=events_list)
    show = ev.add_parser("show", help="one event: headers, attempts, body")
    show.add_argument("event_id")
    show.add_argument("--raw", action="store_true", help="write only the body, byte for byte")
    show.set_defaults(func=events_show)

    rp = sub.add_parser("replay", help="run events through their workflows again")
    rp.add_argument("event_ids", nargs="*", help="these events (else every one matching)")
    _event_filters(rp)
    rp.add_argument("--dry-run", action="store_true", help="only count what matches")
    rp.add_argument("--no-wait", action="store_true", help="do not follow the progress")
    rp.add_argument("--timeout", type=float, default=3600.0)
    rp.set_defaults(func=replay)

    inc = sub.add_parser("incidents", help="list, show, acknowledge, resolve").add_subparsers(
        dest="incidents_command", required=True
    )
    il = inc.add_parser("list")
    il.add_argument("--status", choices=("open", "acknowledged", "resolved"))
    il.add_argument("--severity", choices=("sev1", "sev2", "sev3", "sev4"))
    il.add_argument("--since", type=_iso, help="last seen at or after")
    il.add_argument("--limit", type=int, default=20)
    il.set_defaults(func=incidents_list)
    ishow = inc.add_parser("show")
    ishow.add_argument("incident_id")
    ishow.set_defaults(func=incidents_show)
    for verb in ("ack", "resolve", "reopen"):
        change = inc.add_parser(verb)
        change.add_argument("incident_id")
        change.add_argument("--note", default="")
        change.set_defaults(func=incidents_change, verb=verb)

    tk = sub.add_parser("tokens", help="scoped admin API tokens").add_subparsers(
        dest="action", required=True
    )
    create = tk.add_parser("create")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", required=True, help="read,replay,incidents,admin")
    revoke = tk.add_parser("revoke")
    revoke.add_argument("name")
    tk.add_parser("list")
    for p in (create, revoke, tk.choices["list"]):
        p.set_defaults(func=tokens)

    rt = sub.add_parser("retention", help="empty old event bodies").add_subparsers(
        dest="retention_command", required=True
    )
    run = rt.add_parser("run")
    run.add_argument("--dry-run", action="store_true")
    run.set_defaults(func=retention)
