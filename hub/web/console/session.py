"""The console's session: an HMAC-signed, expiring cookie, so any API process behind a load
balancer can read it and none has to remember it (no table, no shared memory).

The cookie names the token's owner (`env-token-1`, or a scoped token's name) and carries a
binding, an HMAC of that token's SHA-256, never the token or its digest. Each request looks
the token up again by name and checks the binding, so a revoked token, or one removed from
HUB_ADMIN_TOKENS, ends its sessions at once. Forms carry a CSRF value derived from the
session's random nonce with the same key.

The key: HUB_CONSOLE_SECRET when set; otherwise derived from HUB_ADMIN_TOKENS (the same in
every process that shares them; changing them signs everyone out); with neither, a random
key for this process only, which a warning names."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass

from hub.config import Settings

log = logging.getLogger(__name__)

COOKIE = "hub_console"
_CONTEXT = b"hub console session v1"


def session_key(settings: Settings) -> bytes:
    if settings.console_secret is not None and settings.console_secret.get_secret_value():
        secret = settings.console_secret.get_secret_value().encode("utf-8")
        return hmac.new(_CONTEXT, secret, hashlib.sha256).digest()
    tokens = sorted(t.get_secret_value() for t in settings.admin_tokens if t.get_secret_value())
    if tokens:
        return hmac.new(_CONTEXT, "\n".join(tokens).encode("utf-8"), hashlib.sha256).digest()
    log.warning(
        "HUB_CONSOLE_SECRET and HUB_ADMIN_TOKENS are unset: console sessions are signed with "
        "a key of this process only (they end when it restarts and other processes refuse "
        "them); set HUB_CONSOLE_SECRET"
    )
    return secrets.token_bytes(32)


@dataclass(frozen=True, slots=True)
class Session:
    actor: str
    binding: str
    nonce: str
    expires: int


class Sessions:
    def __init__(self, key: bytes, lifetime_s: float) -> None:
        self._key = key
        self.lifetime_s = int(lifetime_s)

    def issue(self, actor: str, token_digest: bytes) -> str:
        """A cookie value for a session of `actor`, who signed in with that token."""
        session = {
            "a": actor,
            "b": self._bind(token_digest),
            "n": secrets.token_urlsafe(16),
            "e": int(time.time()) + self.lifetime_s,
        }
        payload = _b64(json.dumps(session, separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{self._sign(payload)}"

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie holds, if this key signed it and it has not expired."""
        if not cookie or len(cookie) > 2048 or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(str(data["a"]), str(data["b"]), str(data["n"]), int(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def still_bound(self, session: Session, token_digest: bytes) -> bool:
        return hmac.compare_digest(session.binding, self._bind(token_digest))

    def csrf(self, session: Session) -> str:
        return self._mac(b"csrf\0" + session.nonce.encode("utf-8"))

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf(session))

    def _bind(self, token_digest: bytes) -> str:
        return self._mac(b"bind\0" + token_digest)

    def _sign(self, payload: str) -> str:
        return self._mac(b"cookie\0" + payload.encode("ascii", "replace"))

    def _mac(self, message: bytes) -> str:
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
