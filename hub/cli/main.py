"""`hub`: serve, worker, migrate, demo, and the admin commands (hub/cli/admin.py)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from pydantic import ValidationError

from hub.cli import admin as admin_cli
from hub.cli import demo
from hub.config import Settings
from hub.runtime.logs import configure_logging

# uvicorn's graceful shutdown: requests in flight get this long to finish (the Kubernetes
# manifests give the pod more than this plus their preStop sleep).
GRACEFUL_SHUTDOWN_S = 20


def _exit_cleanly(_sig: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

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
        http="httptools",
        # One line per webhook costs more CPU than verifying it; errors are still logged.
        access_log=args.access_log,
        proxy_headers=True,
        # uvicorn's own lines go through the hub's handler (HUB_LOG_FORMAT), not its config.
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


def _worker(args: argparse.Namespace) -> None:
    from hub.workers import run_worker_processes

    run_worker_processes(Settings(), args.processes, args.threads)


def _migrate(_args: argparse.Namespace) -> None:
    from hub.runtime.migrate import upgrade

    settings = Settings()
    upgrade(settings.database_url)
    print("database schema is up to date")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hub", description="Webhook ingestion and incident hub")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (and, without HUB_REDIS_URL, the workers)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=_serve)

    worker = sub.add_parser("worker", help="run Dramatiq worker processes (needs HUB_REDIS_URL)")
    worker.add_argument("--processes", type=int, default=1)
    worker.add_argument("--threads", type=int, default=8)
    worker.set_defaults(func=_worker)

    migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(func=_migrate)
    admin_cli.register(sub)
    demo.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"hub: the HUB_* settings are invalid:\n{exc}", file=sys.stderr)
        sys.exit(2)
    # The servers log what they do; a terminal command prints its answer and only warnings.
    quiet = args.command not in ("serve", "worker", "migrate")
    configure_logging(settings, level=logging.WARNING if quiet else None)
    code = args.func(args)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
