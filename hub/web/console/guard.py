"""Who is looking: the session cookie read back into the same `Admin` the API's bearer
tokens give, with its scopes, and the checks a state-changing form must pass."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from hub.admin.tokens import Scope
from hub.web.auth import Admin, AdminAuth
from hub.web.console.render import Refused, SignInNeeded
from hub.web.console.session import COOKIE, Sessions
from hub.web.schemas import ApiError

MAX_FORM_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Viewer:
    admin: Admin
    csrf: str

    @property
    def actor(self) -> str:
        return self.admin.actor

    def can(self, scope: str) -> bool:
        return Scope(scope) in self.admin.scopes


# What a state-changing form's dependency gives: who, and the form's fields.
Signed = tuple[Viewer, dict[str, str]]


async def form_fields(request: Request) -> dict[str, str]:
    """A urlencoded form (the hub has no multipart parser, and needs none)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Refused(413, "Too large", "the form is larger than the console accepts")
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: value for key, value in pairs}


class ConsoleAuth:
    def __init__(self, auth: AdminAuth, sessions: Sessions) -> None:
        self.auth = auth
        self.sessions = sessions

    def viewer(self, request: Request) -> Viewer:
        back_to = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        session = self.sessions.read(request.cookies.get(COOKIE))
        if session is None:
            raise SignInNeeded(back_to)
        live = self.auth.live_token(session.actor)
        if live is None or not self.sessions.still_bound(session, live[0]):
            raise SignInNeeded(back_to, "revoked")
        verdict = self.auth.limits.hit("admin", session.actor)
        if not verdict.allowed:
            raise ApiError(429, "rate_limited", verdict.reason(), verdict.headers())
        return Viewer(live[1], self.sessions.csrf(session))

    def reads(self, scope: Scope = Scope.READ) -> Callable[..., Viewer]:
        def check(request: Request) -> Viewer:
            return _holding(self.viewer(request), scope)

        return check

    def acts(self, scope: Scope | None) -> Callable[..., Any]:
        """A form that changes something: a session, the scope (None: any), and its CSRF
        value. The dependency gives the viewer and the form's fields."""

        def check(
            request: Request,
            fields: dict[str, str] = Depends(form_fields),  # noqa: B008
        ) -> tuple[Viewer, dict[str, str]]:
            # Browsers say where a request comes from; a cross-site one is refused outright.
            if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                raise Refused(403, "Refused", "a cross-site request cannot change anything here")
            viewer = self.viewer(request)
            if scope is not None:
                _holding(viewer, scope)
            presented = fields.get("csrf") or request.headers.get("x-csrf-token")
            session = self.sessions.read(request.cookies.get(COOKIE))
            if session is None or not self.sessions.csrf_ok(session, presented):
                raise Refused(
                    403,
                    "Refused",
                    "the form's CSRF token is missing or wrong; reload the page and try again",
                )
            return viewer, fields

        return check


def _holding(viewer: Viewer, scope: Scope) -> Viewer:
    if scope not in viewer.admin.scopes:
        held = ", ".join(sorted(viewer.admin.scopes)) or "none"
        raise Refused(
            403,
            "Not allowed",
            f"token {viewer.actor!r} lacks the {scope.value!r} scope (has: {held})",
        )
    return viewer
