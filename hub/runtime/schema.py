"""Is the database there, and migrated to the schema this hub was built for?

`problem(url)` answers None, or one line a person can act on: which database (the URL with
its password hidden; for SQLite also the absolute path of the file, since `./hub.db` depends
on the working directory) and `run: hub migrate`. Reading never creates a SQLite file.
The admin commands refuse to start on such a line (`require_schema`); so do `hub serve` and
`hub worker`, except that a database they cannot reach yet is waited for; `/readyz` answers
not ready with it (`SchemaWatch`).

SQLAlchemy and Alembic are imported inside the functions: `hub --help` must not load them."""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from hub.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

RUN_MIGRATE = "run: hub migrate"
CONNECT_TIMEOUT_S = 3
MAX_WAIT_S = 10.0  # between tries of a database that does not answer yet


class SchemaRefused(SystemExit):
    """A command refused to run on this database; `line` says why (already on stderr)."""

    def __init__(self, line: str) -> None:
        super().__init__(2)
        self.line = line


def require_schema(settings: Settings, *, wait_for_database: bool = False) -> None:
    """Exit 2 with the one line on stderr unless the database is there and at head.

    `wait_for_database` (the long-running commands): a database that cannot be reached is
    tried again, with the line and the wait on stderr each time, instead of exiting. Services
    start in any order (a host booting, compose, a rollout during a failover), and a worker
    that exits leaves its share of the work to a supervisor that may not restart it. A
    missing or old schema still exits: only a person fixes that."""
    delay = 1.0
    while True:
        line, unreachable = diagnose(settings.database_url)
        if line is None:
            return
        if not (wait_for_database and unreachable):
            print(f"hub: {line}", file=sys.stderr)
            raise SchemaRefused(line)
        print(f"hub: {line}; trying again in {delay:.0f} s", file=sys.stderr, flush=True)
        time.sleep(delay)
        delay = min(delay * 2, MAX_WAIT_S)


def sqlite_file(url: str) -> Path | None:
    """The absolute path of a SQLite database file; None for other databases and memory."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(os.path.abspath(database))


def describe(url: str) -> str:
    """`HUB_DATABASE_URL=<url, password hidden>`, and the directory a relative SQLite path
    is relative to."""
    from sqlalchemy.engine import make_url

    shown = make_url(url).render_as_string(hide_password=True)
    path = sqlite_file(url)
    if path is not None and not os.path.isabs(make_url(url).database or ""):
        return f"HUB_DATABASE_URL={shown}, relative to {os.getcwd()}"
    return f"HUB_DATABASE_URL={shown}"


def _where(url: str) -> str:
    path = sqlite_file(url)
    return f"the database at {path}" if path is not None else "the database"


@functools.cache
def packaged_head() -> str:
    """The newest migration this hub ships (read once: the files do not change)."""
    from hub.runtime.migrate import MIGRATIONS

    with _quiet_alembic():  # alembic logs its plugins' set-up when first imported
        from alembic.script import ScriptDirectory

        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None, "the packaged migrations have no head"
    return head


def _known(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from hub.runtime.migrate import MIGRATIONS

    try:
        return ScriptDirectory(str(MIGRATIONS)).get_revision(revision) is not None
    except CommandError:
        return False


def problem(url: str, engine: Engine | None = None) -> str | None:
    """None when the database is at the packaged head; else the one line that says why not.
    `engine`: an engine to reuse (e.g. the app's); otherwise a short-lived one is made."""
    return diagnose(url, engine)[0]


def diagnose(url: str, engine: Engine | None = None) -> tuple[str | None, bool]:
    """`problem`'s line, and whether it is only that the database could not be reached."""
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        return f"no database at {path} ({describe(url)}); {RUN_MIGRATE}", False
    try:
        current = _current_revision(url, engine)
    except Exception as exc:
        # A server may come up later; a SQLite file that fails to open will not.
        server = not url.startswith("sqlite")
        return f"cannot reach {_where(url)} ({describe(url)}): {_reason(exc, url)}", server
    head = packaged_head()
    if current == head:
        return None, False
    if current is None:
        return f"{_where(url)} has no schema ({describe(url)}); {RUN_MIGRATE}", False
    if _known(current):
        line = (
            f"{_where(url)} is at schema revision {current}, behind this hub's {head} "
            f"({describe(url)}); {RUN_MIGRATE}"
        )
        return line, False
    line = (
        f"{_where(url)} is at schema revision {current}, which this hub (head {head}) does "
        f"not know: it was migrated by a newer hub ({describe(url)})"
    )
    return line, False


def _current_revision(url: str, engine: Engine | None) -> str | None:
    from sqlalchemy import create_engine, pool

    with _quiet_alembic():
        from alembic.migration import MigrationContext

    own = engine is None
    if engine is None:
        args = {} if url.startswith("sqlite") else {"connect_timeout": CONNECT_TIMEOUT_S}
        engine = create_engine(url, poolclass=pool.NullPool, connect_args=args)
    try:
        with _quiet_alembic(), engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if own:
            engine.dispose()


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic's INFO lines (plugin set-up, "Context impl ...") say nothing about a check."""
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        alembic_log.setLevel(level)


def _reason(exc: Exception, url: str) -> str:
    """The driver's first line, never the password (some drivers repeat the DSN)."""
    from sqlalchemy.engine import make_url

    cause = getattr(exc, "orig", None) or exc
    text = (str(cause).strip().splitlines() or [""])[0][:200]
    password = make_url(url).password
    if password:
        text = text.replace(str(password), "***")
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


class SchemaWatch:
    """The schema check for `/readyz`: asked at start and on each probe while the schema is
    missing or behind; once it is current, it stays answered (migrations only move forward
    while a hub runs) and the probes cost nothing."""

    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self._url = url
        self._engine = engine
        self._current = False
        self._lock = threading.Lock()

    def problem(self) -> str | None:
        if self._current:
            return None
        with self._lock:
            if self._current:
                return None
            line = problem(self._url, self._engine)
            self._current = line is None
            return line
