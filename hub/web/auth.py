"""Bearer-token authentication, scopes and per-token rate limits for the admin API.

Tokens in HUB_ADMIN_TOKENS have every scope and are named `env-token-N` by position; tokens
made with `hub tokens create` are looked up by digest and carry their own scopes. The
caller is known by name from then on: the secret never reaches a log, an error or the audit
trail."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from hub.admin.tokens import ALL_SCOPES, Scope, TokenStore
from hub.ratelimits.inbound import RateLimits
from hub.web.schemas import ApiError

log = logging.getLogger(__name__)

# auto_error=False: a missing header must get this module's 401 body, not FastAPI's.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="A token from HUB_ADMIN_TOKENS (every scope) or `hub tokens create`.",
)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
NO_TOKENS = (
    "the admin API has no tokens: set HUB_ADMIN_TOKENS (or create one with `hub tokens create`)"
)


@dataclass(frozen=True, slots=True)
class Admin:
    """Who is calling: a name safe to log and to write to the audit trail."""

    actor: str
    scopes: frozenset[Scope] = ALL_SCOPES


class AdminAuth:
    """The dependencies that guard the admin API: `authenticate`, then `requires(scope)`."""

    def __init__(
        self, env_tokens: Sequence[SecretStr], store: TokenStore, limits: RateLimits
    ) -> None:
        # Digests are compared rather than tokens so that compare_digest always sees equal
        # lengths, and a token's length does not show in the timing either.
        self._env = [
            (f"env-token-{position}", _digest(token.get_secret_value()))
            for position, token in enumerate(env_tokens, start=1)
            if token.get_secret_value().strip()
        ]
        self._store = store
        self._limits = limits

    def authenticate(
        self,
        request: Request,
        response: Response,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Admin:
        admin = self._identify(credentials.credentials) if credentials else None
        if admin is None:
            # Guessing tokens counts against the caller's address, like a bad signature.
            verdict = self._limits.hit("unverified", _client(request))
            if not verdict.allowed:
                raise ApiError(429, "rate_limited", verdict.reason(), verdict.headers())
            raise _refuse(request, self._why(credentials))
        verdict = self._limits.hit("admin", admin.actor)
        if not verdict.allowed:
            raise ApiError(429, "rate_limited", verdict.reason(), verdict.headers())
        response.headers.update(verdict.headers())
        request.state.admin = admin
        return admin

    def requires(self, scope: Scope) -> Callable[..., Admin]:
        # A default, not Annotated: FastAPI resolves annotations in module globals.
        def authorize(admin: Admin = Depends(self.authenticate)) -> Admin:  # noqa: B008
            if scope not in admin.scopes:
                held = ", ".join(sorted(admin.scopes)) or "none"
                reason = f"token {admin.actor!r} lacks the {scope.value!r} scope (has: {held})"
                raise ApiError(403, "forbidden", reason)
            return admin

        return authorize

    @property
    def limits(self) -> RateLimits:
        return self._limits

    def identify(self, presented: str) -> Admin | None:
        """The admin a presented token stands for (the console's sign-in), or None."""
        return self._identify(presented)

    def live_token(self, actor: str) -> tuple[bytes, Admin] | None:
        """The SHA-256 of the live token named `actor`, with its scopes; None once it is
        revoked or gone from HUB_ADMIN_TOKENS. A console session is bound to it."""
        for name, known in self._env:
            if name == actor:
                return known, Admin(actor)
        if actor.startswith("env-token-"):
            return None
        found = self._store.live_by_name(actor)
        if found is None:
            return None
        digest, info = found
        return bytes.fromhex(digest), Admin(info.name, info.scopes)

    def _identify(self, presented: str) -> Admin | None:
        digest = _digest(presented)
        actor = None
        for name, known in self._env:
            # No early exit: the time taken must not tell which token matched, or how early.
            if hmac.compare_digest(digest, known) and actor is None:
                actor = name
        if actor is not None:
            return Admin(actor)
        info = self._store.authenticate(presented)
        return Admin(info.name, info.scopes) if info is not None else None

    def _why(self, credentials: HTTPAuthorizationCredentials | None) -> str:
        if not self._env and not self._scoped_tokens_exist():
            return NO_TOKENS
        if credentials is None:
            return "an `Authorization: Bearer <token>` header is required"
        return "the bearer token matches no HUB_ADMIN_TOKENS entry and no live token"

    def _scoped_tokens_exist(self) -> bool:
        try:
            return self._store.any_live()
        except Exception:  # a database that cannot say: claim nothing
            return True


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _client(request: Request) -> str:
    # uvicorn runs with proxy headers on, so this is the address a load balancer forwarded.
    return request.client.host if request.client else "unknown"


def _refuse(request: Request, reason: str) -> ApiError:
    # The reason is fixed text: the presented token must never reach a log or a response.
    log.info(
        "admin request refused: %s %s from %s: %s",
        request.method,
        request.url.path,
        _client(request),
        reason,
    )
    return ApiError(401, "unauthorized", reason, headers=dict(_CHALLENGE))
