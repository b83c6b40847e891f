"""Admin API tokens: the ones in HUB_ADMIN_TOKENS (full access) and scoped ones made with
`hub tokens create`, of which only a SHA-256 digest is stored.

Tokens are 32 random bytes, so a plain digest (no salt, no slow hash) is enough: nobody can
guess one from its digest, and a lookup is one indexed read."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from hub.admin import audit
from hub.admin.models import ApiToken
from hub.events.models import as_utc, as_utc_or_none, utcnow
from hub.runtime.db import write

api_tokens: Table = ApiToken.__table__  # type: ignore[attr-defined]

PREFIX = "hub_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}")


class Scope(StrEnum):
    READ = "read"  # events, incidents, audit, stats
    REPLAY = "replay"  # replay one event or many
    INCIDENTS = "incidents"  # acknowledge and resolve
    ADMIN = "admin"  # tokens and retention; implies every other scope


ALL_SCOPES = frozenset(Scope)


class TokenError(ValueError):
    """A token request that cannot be honoured; the message says why."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    name: str
    prefix: str
    scopes: frozenset[Scope]
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_scopes(text: str | list[str]) -> frozenset[Scope]:
    parts = text.split(",") if isinstance(text, str) else text
    names = [p.strip() for p in parts if p.strip()]
    unknown = sorted(set(names) - {s.value for s in Scope})
    if unknown:
        known = ", ".join(s.value for s in Scope)
        raise TokenError(f"unknown scope(s) {', '.join(unknown)}; known: {known}")
    if not names:
        raise TokenError("a token needs at least one scope")
    scopes = frozenset(Scope(n) for n in names)
    return ALL_SCOPES if Scope.ADMIN in scopes else scopes


class TokenStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, scopes: frozenset[Scope], actor: str) -> tuple[str, TokenInfo]:
        """A new token; its plain text is returned once and never stored."""
        if not _NAME.fullmatch(name) or name.startswith("env-token-"):
            raise TokenError(
                "a token name is 1-100 letters, digits, '_', '.', '@' or '-', and not env-token-N"
            )
        token = PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        ordered = sorted(s.value for s in scopes)
        row = {
            "name": name,
            "digest": digest(token),
            "prefix": token[:10],
            "scopes": ordered,
            "created_at": now,
            "created_by": actor,
        }
        try:
            with write(self.engine) as conn:
                conn.execute(insert(api_tokens), row)
                audit.record(conn, actor, "token.create", name, scopes=ordered)
        except IntegrityError:
            raise TokenError(f"a token named {name!r} exists already") from None
        return token, TokenInfo(name, token[:10], scopes, now, actor, None, None)

    def revoke(self, name: str, actor: str) -> bool:
        with write(self.engine) as conn:
            done = conn.execute(
                update(api_tokens)
                .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            ).rowcount
            if done:
                audit.record(conn, actor, "token.revoke", name)
        return bool(done)

    def list(self) -> list[TokenInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_tokens).order_by(api_tokens.c.id)).all()
        return [_info(r) for r in rows]

    def any_live(self) -> bool:
        """Whether some token made with `hub tokens create` is not revoked."""
        live = select(api_tokens.c.id).where(api_tokens.c.revoked_at.is_(None)).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(live).first() is not None

    def live_by_name(self, name: str) -> tuple[str, TokenInfo] | None:
        """The digest and info of the live token with this name: a console session names
        its token and is refused once that token is revoked (or replaced)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.name == name)).first()
        if row is None or row.revoked_at is not None:
            return None
        return str(row.digest), _info(row)

    def authenticate(self, token: str) -> TokenInfo | None:
        """The live token with this text, or None. Records when it was last used."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(api_tokens).where(api_tokens.c.digest == digest(token))
            ).first()
        if row is None or row.revoked_at is not None:
            return None
        now = utcnow()
        # At most one write a minute per token: reads must not turn into a write each.
        if row.last_used_at is None or (now - as_utc(row.last_used_at)).total_seconds() > 60:
            with write(self.engine) as conn:
                stmt = update(api_tokens).where(api_tokens.c.id == row.id)
                conn.execute(stmt.values(last_used_at=now))
        return _info(row)


def _info(r: Any) -> TokenInfo:
    return TokenInfo(
        name=r.name,
        prefix=r.prefix,
        scopes=frozenset(Scope(s) for s in r.scopes),
        created_at=as_utc(r.created_at),
        created_by=r.created_by,
        last_used_at=as_utc_or_none(r.last_used_at),
        revoked_at=as_utc_or_none(r.revoked_at),
    )
