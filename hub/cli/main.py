"""`hub`: serve, worker, migrate, demo, and the admin commands (hub/cli/admin.py).

`hub --help` and `hub --version` start fast because building the parser imports nothing
heavy: no SQLAlchemy, SQLModel, FastAPI, Dramatiq, Alembic or SDK. Each command imports what
it needs when it runs, so a module that registers commands here keeps its module-level
imports light (tests/test_cli_scripting.py runs `hub --help` and checks)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from hub.cli import admin as admin_cli
from hub.cli import doctor
from hub.cli import rules as rules_cli

# uvicorn's graceful shutdown: requests in flight get this long to finish (the Kubernetes
# manifests give the pod more than this plus their preStop sleep).
GRACEFUL_SHUTDOWN_S = 20
DEMO_URL = "http://127.0.0.1:8000"  # hub.cli.demo.DEFAULT_URL, without importing the demo
# The servers log what they do; every other command prints its answer and only warnings.
LOGGING_COMMANDS = ("serve", "worker")


def _exit_cleanly(_sig: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from hub.runtime import http_protocol

    # uvicorn drains on SIGTERM, then restores the handler it found and raises the signal
    # again, so with the default handler every clean drain ended "killed by SIGTERM" (exit
    # 143, which Kubernetes records as reason Error and compose as a failed exit). This
    # handler turns that last step into exit 0; a SIGTERM before uvicorn has taken over
    # (nothing in flight yet) exits 0 at once.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "hub.bootstrap:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        loop="uvloop",
        # httptools, with an answer's head and body written to the socket at once.
        http=http_protocol.IMPORT_PATH,
        # One line per webhook costs more CPU than verifying it; errors are still logged.
        access_log=args.access_log,
        proxy_headers=True,
        # uvicorn's own lines go through the hub's handler (HUB_LOG_FORMAT), not its config.
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


def _worker(args: argparse.Namespace) -> None:
    from hub.config import Settings
    from hub.workers.processes import run_worker_processes

    run_worker_processes(Settings(), args.processes, args.threads)


def _migrate(_args: argparse.Namespace) -> None:
    from hub.cli.migrate import migrate_quietly
    from hub.config import Settings

    print(migrate_quietly(Settings().database_url))


def _demo(args: argparse.Namespace) -> None:
    from hub.cli import demo

    demo.command(args)


class _Version(argparse.Action):
    """`--version`: read from the installed package's metadata only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "print `hub <version>` and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("webhook-hub")
        except PackageNotFoundError:  # run from a tree that was never installed
            found = "unknown"
        print(f"hub {found}")
        parser.exit()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hub", description="Webhook ingestion and incident hub")
    p.add_argument("--version", action=_Version, dest="version")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (and, without HUB_REDIS_URL, the workers)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (%(default)s)")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=_serve)

    worker = sub.add_parser("worker", help="run Dramatiq worker processes (needs HUB_REDIS_URL)")
    worker.add_argument("--processes", type=int, default=1, help="worker processes (%(default)s)")
    worker.add_argument(
        "--threads", type=int, default=8, help="threads in each process (%(default)s)"
    )
    worker.set_defaults(func=_worker)

    migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(func=_migrate)
    admin_cli.register(sub)
    rules_cli.register(sub)
    _register_demo(sub)
    doctor.register(sub)
    return p


def _register_demo(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="sign and send sample Stripe, GitHub and Slack webhooks to a running hub",
        description="Send a dispute, failed payments, CI red then green and an Acknowledge "
        "press to a running hub, signed with its HUB_*_SECRETS, and show the incidents.",
    )
    demo.add_argument("--url", help=f"the running hub (default: $HUB_URL or {DEMO_URL})")
    demo.add_argument(
        "--pause",
        type=float,
        default=1.5,
        metavar="SECONDS",
        help="pause between steps, to watch them land (default: 1.5)",
    )
    demo.set_defaults(func=_demo)


def _require_rules(path: str) -> None:
    """A server does not start on a rules file it cannot use: exit 2, each error a line."""
    from hub.rules.document import RulesError
    from hub.rules.state import read

    try:
        read(path)
    except RulesError as exc:
        for line in exc.errors:
            print(f"hub: {line}", file=sys.stderr)
        sys.exit(2)


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    from hub.config import load_settings, warn_unknown_settings
    from hub.runtime.logs import configure_logging, lean_records

    settings = load_settings()  # or exit 2 with one line per bad HUB_* variable
    quiet = args.command not in LOGGING_COMMANDS
    if configure_logging(settings, level=logging.WARNING if quiet else None) and not quiet:
        lean_records()  # a server's process: its logging is ours alone
    warn_unknown_settings()
    # The one place a command runs: a check every command must pass goes right above.
    offline = args.command == "rules" and args.rules_command == "check"  # a file, no database
    if args.command not in ("migrate", "demo", "doctor") and not offline:  # doctor: a line
        from hub.runtime.schema import require_schema

        # Or exit 2: no database, or its schema is behind. Servers wait for one not up yet.
        require_schema(settings, wait_for_database=args.command in LOGGING_COMMANDS)
    if args.command in LOGGING_COMMANDS and settings.rules_file:
        _require_rules(settings.rules_file)
    try:
        code = args.func(args)
    except BrokenPipeError:
        # `hub events show ... | head`: the reader stopped early. End quietly, as any Unix
        # tool, not with a traceback (Python's advice: point stdout at devnull so the flush
        # at exit does not fail again). SIGPIPE is not reset instead: main() also runs
        # inside other processes (the tests), which must keep getting EPIPE as an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
