"""Bearer-token authentication for the admin API.

Tokens come from HUB_ADMIN_TOKENS (several during a rotation). A request names no token, so
every configured one is compared; the caller is identified by position, never by the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from hub.web.schemas import ApiError

log = logging.getLogger(__name__)

# auto_error=False: a missing header must get this module's 401 body, not FastAPI's.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="One of the tokens in HUB_ADMIN_TOKENS.",
)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True, slots=True)
class Admin:
    """Who is calling: a name safe to log and to write to the audit trail."""

    actor: str


Authenticate = Callable[..., Admin]


def admin_auth(tokens: Sequence[SecretStr]) -> Authenticate:
    """The dependency that guards the admin API, for the tokens configured."""
    # Digests are compared rather than tokens so that compare_digest always sees equal
    # lengths, and a token's length does not show in the timing either.
    digests = [
        (f"env-token-{position}", _digest(token.get_secret_value()))
        for position, token in enumerate(tokens, start=1)
        if token.get_secret_value().strip()
    ]
    if not digests:
        log.warning("admin API disabled: HUB_ADMIN_TOKENS is unset; every request gets 401")

    def authenticate(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Admin:
        if not digests:
            raise _refuse(request, "the admin API is disabled: HUB_ADMIN_TOKENS is unset")
        if credentials is None:
            raise _refuse(request, "an `Authorization: Bearer <token>` header is required")
        presented = _digest(credentials.credentials)
        actor = None
        for name, digest in digests:
            # No early exit: the time taken must not tell which token matched, or how early.
            if hmac.compare_digest(presented, digest) and actor is None:
                actor = name
        if actor is None:
            raise _refuse(request, "the bearer token matches none of HUB_ADMIN_TOKENS")
        return Admin(actor=actor)

    return authenticate


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _refuse(request: Request, reason: str) -> ApiError:
    # The reason is fixed text: the presented token must never reach a log or a response.
    client = request.client.host if request.client else "unknown"
    log.info(
        "admin request refused: %s %s from %s: %s", request.method, request.url.path, client, reason
    )
    return ApiError(401, "unauthorized", reason, headers=dict(_CHALLENGE))
