"""The rules a process is using, and how a reload reaches every process.

Each process reads HUB_RULES_FILE itself (the file is deployed with the processes, like their
settings). A reload asked of one process (SIGHUP, `POST /admin/rules/reload`, `hub rules
reload`) checks the file first: an invalid one is refused and the old rules stay. A valid one
is recorded (`rules_reloads`, and the audit trail with its hash), and every process, watching
that table every HUB_RULES_POLL_S, re-reads its own file within seconds. A process whose copy
fails to load keeps its old rules and says so in its log."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType

from sqlalchemy import Engine, func, insert, select

from hub.admin import audit
from hub.events.models import utcnow
from hub.rules.compiled import CompiledRule, load
from hub.rules.document import Defaults, RulesError
from hub.rules.models import RulesReload
from hub.runtime.db import write
from hub.runtime.periodic import Periodic

log = logging.getLogger(__name__)

reloads = RulesReload.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class RuleSet:
    """One loaded rules file (or none: the built-in catalogue alone)."""

    rules: tuple[CompiledRule, ...] = ()
    defaults: Defaults = field(default_factory=Defaults)
    source: str | None = None
    hash: str | None = None
    text: str = ""
    loaded_at: datetime | None = None

    def kinds(self) -> list[str]:
        """The kinds (patterns) only rules route: what an `incident` rule may raise or resolve."""
        found: list[str] = []
        for rule in self.rules:
            if rule.spec.incident is None:
                continue
            for cond in (rule.match, rule.resolve_when):
                if cond is not None:
                    found.extend(k for k in cond.kinds() if k not in found)
        return found


BUILTIN = RuleSet()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read(path: str) -> RuleSet:
    """The rules in `path`, or RulesError (a file that cannot be read is one too)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([f"{path}:1: cannot read the rules file: {exc}"]) from None
    return parse_text(text, path)


def parse_text(text: str, source: str) -> RuleSet:
    doc, compiled = load(text, source)
    return RuleSet(compiled, doc.defaults, source, digest(text), text, utcnow())


class RulesInForce:
    """This process's rules, swapped whole (readers take `current` once per event)."""

    def __init__(self, path: str | None, engine: Engine, poll_s: float = 2.0) -> None:
        self.path = path
        self._engine = engine
        self.current: RuleSet = BUILTIN
        self._seen: int | None = None
        self._listeners: list[Callable[[RuleSet], None]] = []
        self._lock = threading.Lock()
        self._watch = Periodic("rules", poll_s, self.poll)
        self._watching = False

    def load_at_start(self) -> RuleSet:
        """The file as the process starts: RulesError refuses to start on a bad one."""
        if self.path is not None:
            self.current = read(self.path)
            log.info("rules: %d from %s (hash %s)", len(self.current.rules), self.path,
                     self.current.hash)  # fmt: skip
        return self.current

    def on_change(self, listener: Callable[[RuleSet], None]) -> None:
        self._listeners.append(listener)

    def reload(self, actor: str) -> RuleSet:
        """Check the file; if valid, use it here and ask every process to (RulesError if not:
        the old rules stay)."""
        if self.path is None:
            raise RulesError(["HUB_RULES_FILE is not set: the built-in catalogue is in force"])
        rules = read(self.path)
        with write(self._engine) as conn:
            row = {"at": utcnow(), "actor": actor[:200], "hash": rules.hash, "source": self.path}
            new_id = conn.execute(insert(reloads).returning(reloads.c.id), row).scalar_one()
            audit.record(conn, actor, "rules.reload", self.path, hash=rules.hash,
                         rules=len(rules.rules))  # fmt: skip
        self._use(rules, seen=int(new_id))
        return rules

    def refused(self, actor: str, error: RulesError) -> None:
        """A reload that was refused is audited too: who tried, and why."""
        audit.write_entry(self._engine, actor, "rules.reload_refused", self.path or "",
                          errors=error.errors[:20])  # fmt: skip

    def poll(self) -> None:
        """Re-read the file when some process recorded a reload since we last looked."""
        with self._engine.connect() as conn:
            newest = conn.execute(select(func.max(reloads.c.id))).scalar()
        if newest is None or newest == self._seen:
            return
        if self.path is None:  # no file to re-read: the catalogue alone stays in force
            self._seen = newest
            return
        try:
            rules = read(self.path)
        except RulesError as exc:
            log.error("rules reload %s refused here, the old rules stay: %s", newest, exc)
            self._seen = newest
            return
        self._use(rules, seen=newest)

    def _use(self, rules: RuleSet, seen: int) -> None:
        with self._lock:
            self._seen = seen
            changed = rules.hash != self.current.hash
            self.current = rules
        if changed:
            log.info("rules reloaded: %d from %s (hash %s)", len(rules.rules), rules.source,
                     rules.hash)  # fmt: skip
            for listener in self._listeners:
                listener(rules)

    def start(self) -> None:
        if self._watching:
            return
        try:
            with self._engine.connect() as conn:
                self._seen = conn.execute(select(func.max(reloads.c.id))).scalar()
        except Exception as exc:  # no database yet: the first poll reads it
            log.warning("rules: reloads not read yet: %s", type(exc).__name__)
        self._watch.start()
        self._watching = True

    def stop(self) -> None:
        if self._watching:
            self._watch.stop()
            self._watching = False

    def reload_logged(self, actor: str) -> None:
        """A reload nobody waits for the answer of (SIGHUP): the outcome goes to the log."""
        try:
            rules = self.reload(actor)
        except RulesError as exc:
            log.error("rules reload refused, the old rules stay:\n%s", exc)
            with contextlib.suppress(Exception):
                self.refused(actor, exc)
            return
        except Exception as exc:  # the database is down: nothing changed
            log.error("rules reload failed: %s: %s", type(exc).__name__, exc)
            return
        log.info("rules reload by %s: hash %s, %d rules", actor, rules.hash, len(rules.rules))

    def reload_on_sighup(self) -> None:
        """SIGHUP re-reads the file, as daemons do; only the main thread may install it."""

        def on_hup(_sig: int, _frame: FrameType | None) -> None:
            # Not in the handler itself: it reads a file and writes to the database.
            threading.Thread(target=self.reload_logged, args=("signal:SIGHUP",),
                             name="hub-rules-reload", daemon=True).start()  # fmt: skip

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, on_hup)
