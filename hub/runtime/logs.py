"""Logs that follow an event: the ids of what a record was written for (the event, the
incident, the provider's delivery, the replay, the admin request) are bound in a context
variable by the code working on it, and every record written meanwhile carries them, as a
JSON object per line or as text with `name=value` pairs appended.

Binding costs a dict copy and a context variable set, so the ingress binds only where it
writes a line (a refusal it logs, an error), never on its success path. Dramatiq runs actors
on threads, each with its own context: bind inside the actor body, not around the worker."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

import orjson

if TYPE_CHECKING:
    from hub.config import Settings

# Written in this order; anything else passed to `bind` is written after them.
FIELDS = (
    "request_id",
    "provider",
    "delivery_id",
    "event_id",
    "replay_id",
    "incident_id",
    "workflow",
    "effect",
)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
HANDLER_NAME = "hub"

_EMPTY: Mapping[str, str] = {}
_bound: ContextVar[Mapping[str, str]] = ContextVar("hub_log_ids", default=_EMPTY)


class bind:  # lower case: it was a function, and is still called as one
    """Every record written inside the block carries these ids (None: not bound); an inner
    bind of the same name wins until it ends, then the outer value is back.

    A class, not a generator: the router binds each event of a batch around its decision,
    and a generator's context manager cost twice as much (~2.6 us against ~1.2)."""

    __slots__ = ("_token", "_values")

    def __init__(self, **ids: str | None) -> None:
        self._values = {name: str(value) for name, value in ids.items() if value is not None}
        self._token: Token[Mapping[str, str]] | None = None

    def __enter__(self) -> None:
        if self._values:
            self._token = _bound.set({**_bound.get(), **self._values})

    def __exit__(self, *_exc: object) -> None:
        if self._token is not None:
            _bound.reset(self._token)
            self._token = None


def bound() -> Mapping[str, str]:
    """The ids bound here and now."""
    return _bound.get()


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record (as attributes), in the thread that logs it.

    An id passed explicitly (`extra={"event_id": ...}`) is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _bound.get()
        if ids:
            for name, value in ids.items():
                if not hasattr(record, name):
                    setattr(record, name, value)
            record.hub_ids = tuple(ids)
        return True


def _ids(record: logging.LogRecord) -> list[tuple[str, str]]:
    """The ids on a record: the known fields in order, then any other bound name."""
    names = [f for f in FIELDS if getattr(record, f, None) is not None]
    names += [n for n in getattr(record, "hub_ids", ()) if n not in FIELDS]
    return [(n, str(getattr(record, n))) for n in names]


class JsonFormatter(logging.Formatter):
    """One object per line: time (ISO 8601, UTC), level, logger, message, the bound ids, and
    the exception's traceback as a string when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, object] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_ids(record))
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """The usual text line with ` name=value` for each bound id, before any traceback."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        ids = _ids(record)
        return line + "".join(f" {n}={v}" for n, v in ids) if ids else line


def resolve_format(log_format: str, stream: TextIO) -> str:
    """`auto` is text on a terminal and JSON otherwise (a container, a file, a pipe)."""
    if log_format != "auto":
        return log_format
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def handler_for(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing to `stream` (stderr) in the format `HUB_LOG_FORMAT` names, with
    the bound ids on every record."""
    stream = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(stream)
    chosen = resolve_format(settings.log_format, stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.set_name(HANDLER_NAME)
    return handler


def configure_logging(settings: Settings, *, level: int | str | None = None) -> bool:
    """Install the hub's handler on the root logger, at `level` or else `HUB_LOG_LEVEL`.

    Like `logging.basicConfig`, nothing changes when someone else configured the root logger
    first (a test runner calling the CLI, an embedding application); one installed by an
    earlier call is replaced. Whether it was installed."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
    if len(ours) != len(root.handlers):
        return False
    for old in ours:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler_for(settings))
    root.setLevel(level if level is not None else settings.log_level)
    return True


def lean_records() -> None:
    """Neither format shows where a line was logged from, nor the thread's or process's name:
    so no record looks them up (the logging HOWTO's "Optimization"). The caller's file and
    line are a walk up the stack for every line. Measured on a 2-core VM, one INFO line
    through the JSON handler with ids bound: 33-58 us -> 25-32 us; a new incident writes
    three (docs/benchmarks.md, 2026-12-04 evening: 2-6% of its CPU). Process-wide, so
    only for the server and worker processes the hub owns (hub/cli/main.py,
    hub/workers/), never where it is embedded or tested; `stack_info=True` then adds
    nothing, and the hub never asks for it."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
