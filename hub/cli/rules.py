"""`hub rules check|test|reload` and `hub silences add|list|expire`.

`check` needs no database: it is what a CI job or a pre-commit hook runs on the rules file.
The rest work on the hub's database through the same code as the admin API."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hub.cli.output import table, when

if TYPE_CHECKING:
    from hub.rules.preview import Preview
    from hub.rules.state import RuleSet

PROVIDERS = ("stripe", "github", "slack")


def _file(args: argparse.Namespace) -> str | None:
    from hub.config import Settings

    path: str | None = args.file or Settings().rules_file
    if path is None:
        print("hub: no FILE given and HUB_RULES_FILE is not set", file=sys.stderr)
    return path


def check(args: argparse.Namespace) -> int:
    from hub.rules.document import RulesError
    from hub.rules.state import read

    path = _file(args)
    if path is None:
        return 2
    try:
        rules = read(path)
    except RulesError as exc:
        for line in exc.errors:
            print(line)
        return 1
    actions = sorted({r.spec.action for r in rules.rules})
    print(f"{path}: {len(rules.rules)} rules ({', '.join(actions) or 'none'}), hash {rules.hash}")
    return 0


def test(args: argparse.Namespace) -> int:
    from hub.cli.admin import _container
    from hub.rules.document import RulesError
    from hub.rules.preview import Scope, parse_span, preview
    from hub.rules.state import BUILTIN, read

    path = _file(args)
    if path is None:
        return 2
    try:
        proposed = read(path)
        span = parse_span(args.since)
    except (RulesError, ValueError) as exc:
        for line in exc.errors if isinstance(exc, RulesError) else [str(exc)]:
            print(line, file=sys.stderr)
        return 1
    c = _container()
    in_force: RuleSet = BUILTIN
    if c.settings.rules_file and c.settings.rules_file != path:
        try:
            in_force = read(c.settings.rules_file)
        except RulesError:
            print("hub: HUB_RULES_FILE is not valid: comparing with the catalogue alone",
                  file=sys.stderr)  # fmt: skip
    from handlers.triggers.offline import catalogue_decision

    scope = Scope(span, args.provider, args.type)
    result = preview(c.engine, c.settings, catalogue_decision, (proposed, in_force), scope)
    if args.json:
        import json

        print(json.dumps(result.as_json(), indent=2))
        return 0
    _print(result, path, in_force)
    return 0


def _print(result: Preview, path: str, in_force: RuleSet) -> None:
    against = in_force.source or "the built-in catalogue alone"
    print(f"{path} (hash {result.hash}) on {result.events} events since {when(result.since)} UTC,"
          f" against {against}")  # fmt: skip
    if result.undecidable or result.truncated:
        more = " (the first only)" if result.truncated else ""
        print(f"  {result.undecidable} thin events skipped: they need Stripe to decide{more}")
    print()
    table(("RULE", "ACTION", "MATCHED", "MISSES", "LINE"),
          [(r["name"], r["action"], r["matched"], r["misses"], r["line"]) for r in result.rules],
          sys.stdout)  # fmt: skip
    print()
    new, old = result.proposed.as_json(), result.in_force.as_json()
    rows: list[tuple[Any, ...]] = [
        (what, old[key], new[key], _delta(new[key] - old[key]))
        for what, key in (("incidents", "incidents"), ("suppressed", "suppressed"),
                          ("resolves", "resolves"), ("template errors", "template_errors"))
    ]  # fmt: skip
    for label, key in (("slack", "slack_posts"), ("github", "github_issues")):
        for name in sorted(set(new[key]) | set(old[key])):
            a, b = old[key].get(name, 0), new[key].get(name, 0)
            rows.append((f"{label} {name}", a, b, _delta(b - a)))
    table(("WOULD RESULT", "IN FORCE", "WITH FILE", "CHANGE"), rows, sys.stdout)
    print(f"\n{result.changed} events decided differently" + (":" if result.changed else "."))
    for diff in result.differences[:20]:
        print(f"  {diff['event_id']} {diff['kind']}\n    in force:  {diff['in_force']}\n"
              f"    with file: {diff['proposed']}")  # fmt: skip


def _delta(n: int) -> str:
    return f"+{n}" if n > 0 else str(n) if n else "="


def reload(_args: argparse.Namespace) -> int:
    from hub.cli.admin import _actor, _container
    from hub.rules.document import RulesError

    c = _container()
    try:
        rules = c.rules.reload(_actor())
    except RulesError as exc:
        c.rules.refused(_actor(), exc)
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 1
    print(f"reloaded {rules.source}: {len(rules.rules)} rules, hash {rules.hash}; "
          f"every process follows within {c.settings.rules_poll_s:g} s")  # fmt: skip
    return 0


def silences_list(args: argparse.Namespace) -> int:
    from hub.cli.admin import _container
    from hub.events.models import utcnow
    from hub.rules import silences

    now = utcnow()
    rows = silences.listed(_container().engine, include_expired=args.all)
    table(("ID", "STATE", "STARTS (UTC)", "ENDS (UTC)", "BY", "MATCH", "REASON"),
          [(s.id, s.state(now), when(s.starts_at), when(s.ends_at), s.created_by, s.match,
            s.reason) for s in rows], sys.stdout)  # fmt: skip
    return 0


def silences_add(args: argparse.Namespace) -> int:
    from hub.cli.admin import _actor, _container
    from hub.events.models import utcnow
    from hub.rules import silences
    from hub.rules.preview import parse_span

    try:
        ends = args.until or (utcnow() + parse_span(args.duration))
        row = silences.add(_container().engine, _actor(), args.match, ends,
                           starts_at=args.starts, reason=args.reason)  # fmt: skip
    except (silences.SilenceError, ValueError) as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 1
    print(f"{row.id}: silenced until {when(row.ends_at)} UTC: {row.match}")
    return 0


def silences_expire(args: argparse.Namespace) -> int:
    from hub.cli.admin import _actor, _container
    from hub.rules import silences

    c = _container()
    try:
        row = silences.expire(c.engine, c.events, args.silence_id, _actor())
    except silences.SilenceError as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 1
    print(f"{row.id}: expired at {when(row.ends_at)} UTC")
    return 0


def _iso(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def register(sub: Any) -> None:
    rules = sub.add_parser("rules", help="check, try and reload the routing rules")
    rc = rules.add_subparsers(dest="rules_command", required=True)
    ck = rc.add_parser("check", help="validate a rules file (no database needed)")
    ck.add_argument("file", nargs="?", help="the file (default: $HUB_RULES_FILE)")
    ck.set_defaults(func=check)
    ts = rc.add_parser("test", help="run stored events through a rules file, no side effects")
    ts.add_argument("file", nargs="?", help="the file (default: $HUB_RULES_FILE)")
    ts.add_argument("--since", default="7d", help="how far back: 7d, 12h, 90m (%(default)s)")
    ts.add_argument("--provider", choices=PROVIDERS, help="only this provider's events")
    ts.add_argument("--type", help="one event type")
    ts.add_argument("--json", action="store_true", help="the admin API's JSON")
    ts.set_defaults(func=test)
    rl = rc.add_parser("reload", help="every process re-reads HUB_RULES_FILE (if it is valid)")
    rl.set_defaults(func=reload)

    sil = sub.add_parser("silences", help="maintenance windows: silence matching incidents")
    sc = sil.add_subparsers(dest="silences_command", required=True)
    ls = sc.add_parser("list", help="active and pending silences")
    ls.add_argument("--all", action="store_true", help="expired ones too")
    ls.set_defaults(func=silences_list)
    add = sc.add_parser("add", help="silence incidents whose event matches a CEL expression")
    add.add_argument("match", help="CEL, e.g. 'provider == \"github\" && "
                     "payload.repository.name == \"app\"'")  # fmt: skip
    end = add.add_mutually_exclusive_group(required=True)
    end.add_argument("--for", dest="duration", help="how long: 2h, 30m")
    end.add_argument("--until", type=_iso, help="when it ends (ISO 8601, UTC by default)")
    add.add_argument("--starts", type=_iso, help="when it starts (default: now)")
    add.add_argument("--reason", default="", help="why (shown in the list and the audit)")
    add.set_defaults(func=silences_add)
    ex = sc.add_parser("expire", help="end a silence now; what it held is posted if still live")
    ex.add_argument("silence_id", help="its id (sil_...), as `hub silences list` shows")
    ex.set_defaults(func=silences_expire)
